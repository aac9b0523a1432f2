# Rules of the ntk_lora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `ntk_lora` target pick them up.)

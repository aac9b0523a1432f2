# Rules of the meta_lora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `meta_lora` target pick them up.)

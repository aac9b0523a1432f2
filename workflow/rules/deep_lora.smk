# Rules of the deep_lora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `deep_lora` target pick them up.)

# Rules of the lora_one paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `lora_one` target pick them up.)

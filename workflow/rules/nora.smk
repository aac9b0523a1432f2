# Rules of the nora paper: experiments -> run records -> tables and figures.
# (Registered with `register` so claims, reports and the `nora` target pick them up.)

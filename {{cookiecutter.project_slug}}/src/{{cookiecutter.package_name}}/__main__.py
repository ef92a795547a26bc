import gc

from .cli import main

code = main()
# A stage ends holding scikit-learn, pandas, MLflow...: collecting all of that garbage as the
# interpreter exits took up to 1.5 s per stage and frees nothing the OS does not. Frozen
# objects are skipped; atexit handlers and the flushing of files still run (objects caught in
# reference cycles are not finalised: a stage must not leave work to a __del__ method).
gc.freeze()
raise SystemExit(code)

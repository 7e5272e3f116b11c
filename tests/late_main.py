"""`adaattn ARGS...` as torchrun runs it, process 0 starting a few seconds after the others: run by
tests/test_distributed.py to make the race between the processes and process 0's error line certain.

    torchrun --nproc-per-node 2 tests/late_main.py export adain -o x.onnx
"""

import os
import time

if __name__ == "__main__":
    if os.environ.get("RANK") == "0":
        time.sleep(3)  # the others meet the error first; torchrun stops process 0 as soon as one of them exits
    from adaattn_cli.cli import main

    main()

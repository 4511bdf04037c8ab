"""Entry point for launchers: `accelerate launch train.py --config C key=value ...` or `torchrun ... train.py ...`.

The same code and arguments as `cycledeblur train`.
"""

import sys

from cycledeblur.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

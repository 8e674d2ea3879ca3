"""``python -m deploy.local.tfserving_standin``: the banner first, then TensorFlow, then serving."""

import sys

from deploy.local.tfserving_standin.identity import announce

if __name__ == "__main__":
    # TensorFlow logs to stderr as soon as it is imported: the banner must come before.
    announce()
    from deploy.local.tfserving_standin.cli import main

    sys.exit(main())

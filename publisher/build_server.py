"""Imported by the fork server that forks the scheduler's builds, and only there (build_process.prepare names it).

The server ends when it sees that the scheduler is gone, then tears its interpreter down
for about a tenth of a second, and a build it forked would go on for that long, enough to
finish a small site and swap its output in after the scheduler was killed. Asked here to
be killed with the scheduler, it ends at once, and Linux ends its build with it (the build
asks for that in build_process._child).
"""

import os

from publisher import build as _rendering_stack  # noqa: F401 - what every build needs, imported once here
from publisher import parallel

parallel.die_with(os.getppid())  # the scheduler, which started this server

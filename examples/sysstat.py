"""The seed's sar notes: install sysstat, sample every 10 minutes, a 24-hour clock.

    converge apply examples/sysstat.py

Uses the sysstat cookbook (cookbooks/sysstat) with its defaults; change them with
-a, e.g. `-a sysstat.interval=5 -a sysstat.history=7`.
"""

from converge import include_recipe

include_recipe("sysstat")

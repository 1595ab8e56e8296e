"""The command line's commands: one module per command or small family, each with its flags and its
handler together. A module's `add(sub)` adds its subparser(s), each with `func`, the handler main()
calls; heavy imports (torch) wait inside the handlers, so `--help` stays fast. Shared flag groups are
in _common. COMMANDS is the order `budgetvision --help` lists them in."""
from . import bench, demo, eval, experiment, export, leaderboard, lr_find, presets, report, sample, selftest, sweep, train

COMMANDS = (presets, leaderboard, train, bench, eval, lr_find, sample, sweep, export, report, experiment, selftest,
            demo)

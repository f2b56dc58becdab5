"""The names of the choices the command line offers, in a module without torch, so `animegen --help` starts at
once. The modules that implement each choice import their names from here (one place for each list)."""

OBJECTIVE_NAMES = ("pred_noise", "pred_x0", "pred_v", "edm")   # diffusion/parameterization.py: OBJECTIVES
THRESHOLDS = ("static", "dynamic", "none")                      # diffusion/parameterization.py: threshold_x0
SPACINGS = ("uniform", "trailing", "quadratic", "logsnr")       # samplers/timesteps.py
# the samplers themselves: samplers/table.py (torch-free too)
PRECISION_SETTINGS = ("auto", "bf16", "fp16", "fp32")           # core/precision.py: resolve_precision (--precision)
BF16_ALIASES = {"auto": "auto", "on": "bf16", "off": "fp32"}      # the older --bf16 auto|on|off, kept as an alias
COMPILE_SETTINGS = ("auto", "on", "off")                        # training/compile_plan.py, samplers/compiled_net.py
DIST_SYNCS = ("auto", "ddp", "allreduce")                       # training/compile_plan.py: gradients over processes
DISTILL_METHODS = ("trajectory", "ect")                         # training/trajectory_distill.py, ECT's loss
TEACHER_SOLVERS = ("unipc", "dpmpp")                            # training/trajectory_distill.py: the teacher's ODE

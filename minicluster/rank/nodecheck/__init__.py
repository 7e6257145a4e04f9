"""The measurements of `minicluster node-check` on this node's own devices (GEMM, memory,
host-device copies, burn-in: torch) and hardware state (NVML, the kernel log, sysfs, DCGM: no
torch). Each returns plain observations, with an error or reason where it could not measure;
`analysis.nodecheck` judges them."""

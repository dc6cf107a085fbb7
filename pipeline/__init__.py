"""Plain data code: the Trial type, OpenSim and C3D file I/O, filtering, the synthetic cohort,
SMPL virtual markers. No Luigi, no OpenSim, no torch."""

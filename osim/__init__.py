"""The only package that imports `opensim`: built-in model, contact, scaling, IK, Moco tracking,
extraction of torques and GRFs, export of the kinematic tree for `models/`.

Inside this package write `import opensim`, never `import opensim as osim` (it would shadow us).
"""

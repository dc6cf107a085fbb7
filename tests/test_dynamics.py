"""Torch multibody dynamics against OpenSim itself: markers, mass matrix, inverse and forward
dynamics at 100 random states of the walking model and of the built-in model, and a reproduction
of OpenSim's inverse dynamics of the real walking trial (`id_walk.sto`)."""
import numpy as np
import opensim
import pytest
import torch
from conftest import shared_file

from models.dynamics import ExternalLoad, Multibody
from models.tree import random_states
from osim.builtin_model import build_model
from osim.export_tree import export_tree, simbody_vectors
from pipeline.opensim_files import read_sto

N_STATES = 100


def _load_without_forces(model: opensim.Model):
    """Muscles, actuators and contact change no multibody quantity; switch them off so that
    InverseDynamicsSolver returns the pure multibody generalized forces."""
    forces = model.updForceSet()
    for i in range(forces.getSize()):
        forces.get(i).set_appliesForce(False)
    return model, model.initSystem()


def _opensim_reference(model, state, desc, q, qd, qdd):
    """Markers (n, M, 3), mass matrix (n, N, N) and ID (n, N) from OpenSim, coordinate order."""
    mob = np.array([c["mobility_index"] for c in desc["coordinates"]])
    n, ncoord = q.shape
    assert state.getNQ() == ncoord == state.getNU()  # q and u slots coincide (no quaternions)
    solver = opensim.InverseDynamicsSolver(model)
    matter = model.getMatterSubsystem()
    markers = model.getMarkerSet()
    mk, mass, tau = [], [], []
    for k in range(n):
        qv, uv, udot = simbody_vectors(desc["coordinates"], q[k], qd[k], qdd[k])
        state.setQ(qv)
        state.setU(uv)
        model.realizeVelocity(state)
        mk.append([[markers.get(m).getLocationInGround(state).get(j) for j in range(3)]
                   for m in range(markers.getSize())])
        mat = opensim.Matrix()
        matter.calcM(state, mat)
        full = np.array([[mat.get(i, j) for j in range(ncoord)] for i in range(ncoord)])
        mass.append(full[np.ix_(mob, mob)])
        t = solver.solve(state, udot)
        tau.append([t.get(int(mob[i])) for i in range(ncoord)])
    return np.array(mk), np.array(mass), np.array(tau)


def _check_against_opensim(model, seed):
    model, state = _load_without_forces(model)
    desc = export_tree(model)
    mb = Multibody.from_tree(desc, torch.float64)
    q, qd, qdd = random_states(desc, N_STATES, seed)
    ref_mk, ref_m, ref_tau = _opensim_reference(model, state, desc, q, qd, qdd)
    # The coordinate-set order really is the state's: values read back from OpenSim agree.
    coords = model.getCoordinateSet()
    assert np.allclose([coords.get(i).getValue(state) for i in range(coords.getSize())], q[-1])

    tq, tqd, tqdd = (torch.tensor(x) for x in (q, qd, qdd))
    mk = mb.marker_positions(tq).numpy()
    assert np.abs(mk - ref_mk).max() < 1e-9
    mass = mb.mass_matrix(tq).numpy()
    rel = np.abs(mass - ref_m).max(axis=(1, 2)) / np.abs(ref_m).max(axis=(1, 2))
    assert rel.max() < 1e-9
    tau = mb.inverse_dynamics(tq, tqd, tqdd)
    assert np.abs(tau.numpy() - ref_tau).max() < 1e-6
    qdd_back = mb.forward_dynamics(tq, tqd, tau).numpy()
    assert np.abs(qdd_back - qdd).max() < 1e-8


def test_walking_model_matches_opensim(walking_dir):
    model = opensim.Model(str(walking_dir / "subject_walk_scaled.osim"))
    _check_against_opensim(model, seed=1)


def test_builtin_model_matches_opensim():
    _check_against_opensim(build_model(1.75, 70.0, "F"), seed=2)


def _idtool_kinematics(path, names, stride):
    """What OpenSim's InverseDynamicsTool does to coordinates: pad by half the length, 6 Hz
    lowpassIIR, GCV quintic splines; speeds and accelerations from the spline derivatives."""
    sto = opensim.Storage(str(path))
    times = opensim.ArrayDouble()
    sto.getTimeColumn(times)
    t = np.array([times.get(i) for i in range(times.getSize())])[::stride]
    sto.pad(sto.getSize() // 2)
    sto.lowpassIIR(6.0)
    splines = opensim.GCVSplineSet(5, sto)
    d1, d2 = opensim.StdVectorInt(), opensim.StdVectorInt()
    d1.append(0)
    d2.append(0)
    d2.append(0)
    out = np.zeros((3, len(t), len(names)))
    for j, name in enumerate(names):
        f = splines.get(name)
        for i, ti in enumerate(t):
            x = opensim.Vector(1, float(ti))
            out[:, i, j] = f.calcValue(x), f.calcDerivative(d1, x), f.calcDerivative(d2, x)
    return t, out


def test_walking_trial_reproduces_opensim_inverse_dynamics(walking_dir):
    """Our ID of coordinates_for_ID.sto with the plates of grf_walk.mot (per grf_walk.xml:
    ground_force_r_* on calcn_r, ground_force_l_* on calcn_l, forces and CoPs in ground)."""
    mb = Multibody.from_osim(walking_dir / "subject_walk_scaled.osim", dtype=torch.float64)
    t, (q, qd, qdd) = _idtool_kinematics(walking_dir / "coordinates_for_ID.sto",
                                         mb.coordinate_names, stride=5)
    grf = read_sto(walking_dir / "grf_walk.mot")
    # The plates (2000 Hz) sample every coordinate time (1000 Hz): interpolation is exact.
    grf = grf.reindex(grf.index.union(t)).interpolate("index").loc[t]

    def cols(names):
        return torch.tensor(grf[names].to_numpy())

    loads = [ExternalLoad(f"calcn_{s}", cols([f"ground_force_{s}_v{a}" for a in "xyz"]),
                          cols([f"ground_force_{s}_p{a}" for a in "xyz"]),
                          cols([f"ground_torque_{s}_{a}" for a in "xyz"])) for s in "rl"]
    tau = mb.inverse_dynamics(*(torch.tensor(x) for x in (q, qd, qdd)), external=loads).numpy()

    ref = read_sto(walking_dir / "id_walk.sto").loc[t]
    for j, name in enumerate(mb.coordinate_names):
        column = f"{name}_force" if name.endswith(("_tx", "_ty", "_tz", "_beta")) \
            else f"{name}_moment"
        rms = np.sqrt(np.mean((tau[:, j] - ref[column].to_numpy()) ** 2))
        # id_walk.sto is written with 8 decimals; we agree to that precision (far below 1 N*m).
        assert rms < 1e-6, (name, rms)


@pytest.fixture(scope="module")
def walking_multibody():
    path = shared_file("opensim-core", "example3DWalking", "subject_walk_scaled.osim")
    return Multibody.from_osim(path, dtype=torch.float64)


def test_external_load_equals_contact_jacobian_transpose(walking_multibody):
    """A force at a point on a body enters the dynamics as J^T f (J: the point's Jacobian)."""
    mb = walking_multibody
    desc_q = torch.tensor(random_states(mb.tree.description, 3, seed=4)[0])
    qd = torch.randn_like(desc_q)
    qdd = torch.randn_like(desc_q)
    loc = [0.05, -0.02, 0.01]
    force = torch.randn(3, 3, dtype=torch.float64) * 300
    body = "calcn_r"
    R, p = mb.body_poses(desc_q)
    b = mb.body_names.index(body)
    point = p[:, b] + (R[:, b] @ torch.tensor(loc, dtype=torch.float64).unsqueeze(-1))[..., 0]
    with_load = mb.inverse_dynamics(desc_q, qd, qdd, [ExternalLoad(body, force, point)])
    jac = mb.point_jacobian(desc_q, body, loc)  # (3, 3, N)
    expected = mb.inverse_dynamics(desc_q, qd, qdd) - (jac.transpose(-1, -2) @ force[..., None])[..., 0]
    assert torch.allclose(with_load, expected, atol=1e-9)
    # The Jacobian is the derivative of the point: compare with autograd.
    q0 = desc_q[0].clone().requires_grad_(True)
    auto = torch.autograd.functional.jacobian(
        lambda x: mb.body_poses(x)[1][b] + mb.body_poses(x)[0][b] @ torch.tensor(
            loc, dtype=torch.float64), q0)
    assert torch.allclose(auto, jac[0], atol=1e-12)


def test_batched_equals_per_sample_loop(walking_multibody):
    mb = walking_multibody
    q, qd, qdd = (torch.tensor(x) for x in random_states(mb.tree.description, 6, seed=5))
    q, qd, qdd = (x.reshape(2, 3, -1) for x in (q, qd, qdd))
    batched = mb.inverse_dynamics(q, qd, qdd)
    mass = mb.mass_matrix(q)
    markers = mb.marker_positions(q)
    for i in range(2):
        for k in range(3):
            assert torch.allclose(batched[i, k], mb.inverse_dynamics(q[i, k], qd[i, k], qdd[i, k]),
                                  rtol=0, atol=1e-10)
            assert torch.allclose(mass[i, k], mb.mass_matrix(q[i, k]), rtol=0, atol=1e-12)
            assert torch.allclose(markers[i, k], mb.marker_positions(q[i, k]), rtol=0, atol=1e-14)


def test_float32_close_to_float64(walking_multibody):
    mb = walking_multibody
    q, qd, qdd = (torch.tensor(x) for x in random_states(mb.tree.description, 8, seed=6))
    tau64 = mb.inverse_dynamics(q, qd, qdd)
    tau32 = mb.inverse_dynamics(q.float(), qd.float(), qdd.float())
    assert tau32.dtype == torch.float32
    assert (tau32.double() - tau64).abs().max() < 1e-2 * max(1.0, tau64.abs().max().item())


def test_default_coordinates(walking_multibody):
    mb = walking_multibody
    q = mb.default_coordinates(2, 3)
    assert q.shape == (2, 3, mb.num_coordinates) and q.dtype == torch.float64
    model = opensim.Model(str(shared_file("opensim-core", "example3DWalking",
                                          "subject_walk_scaled.osim")))
    coords = model.getCoordinateSet()
    assert q[1, 2].tolist() == [coords.get(i).getDefaultValue() for i in range(coords.getSize())]


def test_wrong_shape_and_unknown_body_raise(walking_multibody):
    mb = walking_multibody
    with pytest.raises(ValueError, match="coordinates"):
        mb.mass_matrix(torch.zeros(5, dtype=torch.float64))
    z = torch.zeros(mb.num_coordinates, dtype=torch.float64)
    with pytest.raises(ValueError, match="unknown body"):
        mb.inverse_dynamics(z, z, z, [ExternalLoad("no_such_body", torch.zeros(3))])


def test_contact_jacobian_and_loads_on_builtin_model():
    """Sphere-centre Jacobians are the derivatives of the centres, and forces at the spheres
    enter the dynamics as J_c^T lambda."""
    mb = Multibody.from_osim(build_model(1.8, 80.0, "M"), dtype=torch.float64)
    assert len(mb.contact_names) == 12
    q = torch.tensor(random_states(mb.tree.description, 2, seed=7)[0])
    qd, qdd = torch.randn_like(q), torch.randn_like(q)
    jac = mb.contact_jacobian(q)  # (2, 12, 3, N)
    auto = torch.autograd.functional.jacobian(mb.contact_positions, q[0])  # (12, 3, N)
    assert torch.allclose(jac[0], auto, rtol=0, atol=1e-12)
    lam = torch.randn(2, 12, 3, dtype=torch.float64) * 100
    with_contact = mb.inverse_dynamics(q, qd, qdd, mb.contact_loads(lam, q=q))
    expected = mb.inverse_dynamics(q, qd, qdd) - torch.einsum("bkin,bki->bn", jac, lam)
    assert torch.allclose(with_contact, expected, rtol=0, atol=1e-9)
    qdd_fd = mb.forward_dynamics(q, qd, torch.zeros_like(q), mb.contact_loads(lam, q=q))
    assert torch.allclose(mb.inverse_dynamics(q, qd, qdd_fd, mb.contact_loads(lam, q=q)),
                          torch.zeros_like(q), rtol=0, atol=1e-8)

"""Every supported joint type (Planar, CustomJoint with Linear/Polynomial/SimmSpline/Constant
axes, Pin, Universal, Slider, Weld) against OpenSim on a small chain built in code; autograd
checks (gradcheck of FK, ID and an RK4 step); the exact-derivative mode against Lagrange's
equations; and the integrators."""
import numpy as np
import opensim
import pytest
import torch

from models.dynamics import Multibody
from models.integrators import MultibodyODE, integrate, rk4_step, semi_implicit_euler_step
from osim.export_tree import export_tree

V = opensim.Vec3


def build_tiny_model() -> "opensim.Model":
    """Every supported joint type in one 6-body chain, with markers and a contact sphere."""
    m = opensim.Model()
    m.setName("tiny")
    m.setGravity(V(0.3, -9.81, 0.2))
    def body(name, mass, com, inertia):
        b = opensim.Body(name, mass, V(*com), opensim.Inertia(*inertia))
        m.addBody(b)
        return b
    base = body("base", 3.0, (0.05, 0.1, -0.02), (0.3, 0.2, 0.25, 0.01, -0.02, 0.03))
    link1 = body("link1", 2.0, (0.0, -0.2, 0.01), (0.1, 0.05, 0.12, 0.005, 0.0, -0.01))
    link2 = body("link2", 1.5, (0.02, -0.15, 0.0), (0.05, 0.02, 0.06, 0.0, 0.003, 0.0))
    link3 = body("link3", 1.0, (0.0, -0.1, 0.03), (0.02, 0.03, 0.01, 0.001, 0.0, 0.002))
    link4 = body("link4", 0.8, (0.1, 0.0, 0.0), (0.01, 0.02, 0.02, 0.0, 0.0, 0.0))
    link5 = body("link5", 0.5, (0.0, 0.0, 0.05), (0.004, 0.005, 0.003, 0.0, 0.0, 0.0))
    m.addJoint(opensim.PlanarJoint("planar", m.getGround(), V(0.1, 0.9, 0.0), V(0.0, 0.2, 0.0),
                                   base, V(0.0, 0.05, 0.0), V(0.1, 0.0, 0.0)))
    st = opensim.SpatialTransform()
    spline = opensim.SimmSpline()
    for x, y in [(-1.0, 0.01), (-0.3, 0.03), (0.2, -0.02), (0.8, 0.04), (1.5, 0.0)]:
        spline.addPoint(x, y)
    coefs = opensim.Vector(4, 0.0)
    for i, c in enumerate((0.05, -0.2, 0.3, 0.01)):
        coefs.set(i, c)
    poly = opensim.PolynomialFunction(coefs)
    axes = [("c1", (0, 0, 1), opensim.LinearFunction(1.0, 0.0)),
            ("c2", (1, 0, 0), opensim.LinearFunction(0.8, 0.1)),
            ("c1", (0, 1, 0), poly),
            ("c1", (1, 0, 0), spline),
            (None, (0, 1, 0), opensim.Constant(-0.3)),
            ("c2", (0, 0, 1), opensim.LinearFunction(0.02, 0.0))]
    for i, (coord, axis, func) in enumerate(axes):
        ta = st.updTransformAxis(i)
        ta.setCoordinateNames(opensim.ArrayStr(coord, 1) if coord else opensim.ArrayStr())
        ta.setAxis(V(*axis))
        ta.set_function(func)
    m.addJoint(opensim.CustomJoint("custom", base, V(0.0, -0.1, 0.05), V(0.0, 0.0, 0.3),
                                   link1, V(0.0, 0.1, 0.0), V(0.2, 0.0, 0.0), st))
    m.addJoint(opensim.PinJoint("pin", link1, V(0.0, -0.4, 0.0), V(0.3, 0.1, 0.0),
                                link2, V(0.0, 0.05, 0.0), V(0.0, 0.2, 0.1)))
    m.addJoint(opensim.UniversalJoint("universal", link2, V(0.0, -0.3, 0.0), V(0.0, 0.0, 0.4),
                                      link3, V(0.01, 0.0, 0.0), V(0.0, 0.1, 0.0)))
    m.addJoint(opensim.SliderJoint("slider", link3, V(0.0, -0.2, 0.0), V(0.0, 0.3, 0.0),
                                   link4, V(0.0, 0.0, 0.0), V(0.2, 0.0, 0.0)))
    m.addJoint(opensim.WeldJoint("weld", link4, V(0.2, 0.0, 0.0), V(0.1, 0.2, 0.3),
                                 link5, V(0.0, 0.0, 0.01), V(0.0, 0.0, 0.0)))
    for name, frame, loc in [("m_base", base, (0.1, 0.0, 0.0)), ("m_link3", link3, (0.0, -0.1, 0.02)),
                             ("m_link5", link5, (0.03, 0.02, 0.01))]:
        m.addMarker(opensim.Marker(name, frame, V(*loc)))
    floor = opensim.ContactHalfSpace(V(0, 0, 0), V(0, 0, -1.5707963267948966), m.getGround(), "floor")
    sphere = opensim.ContactSphere(0.03, V(0.05, -0.02, 0.0), link5, "ball")
    m.addContactGeometry(floor)
    m.addContactGeometry(sphere)
    force = opensim.SmoothSphereHalfSpaceForce("contact", sphere, floor)
    force.set_stiffness(1e6)
    force.set_dissipation(2.0)
    m.addForce(force)
    m.finalizeConnections()
    cs = m.getCoordinateSet()
    for i in range(cs.getSize()):
        cs.get(i).setRangeMin(-1.2)
        cs.get(i).setRangeMax(1.2)
    return m


@pytest.fixture(scope="module")
def tiny():
    model = build_tiny_model()
    forces = model.updForceSet()
    for i in range(forces.getSize()):  # contact force off: ID compares pure multibody terms
        forces.get(i).set_appliesForce(False)
    state = model.initSystem()
    desc = export_tree(model)
    return model, state, desc, Multibody.from_tree(desc, torch.float64)


def test_all_joint_types_match_opensim(tiny):
    model, state, desc, mb = tiny
    n = mb.num_coordinates
    assert mb.coordinate_names == ["planar_coord_0", "planar_coord_1", "planar_coord_2", "c1",
                                   "c2", "pin_coord_0", "universal_coord_0",
                                   "universal_coord_1", "slider_coord_0"]
    rng = np.random.default_rng(3)
    coords, markers = model.getCoordinateSet(), model.getMarkerSet()
    solver = opensim.InverseDynamicsSolver(model)
    mob = [c["mobility_index"] for c in desc["coordinates"]]
    for _ in range(20):
        q, qd, qdd = rng.uniform(-1.2, 1.2, n), rng.normal(size=n), rng.normal(size=n)
        for i in range(n):
            coords.get(i).setValue(state, q[i], False)
            coords.get(i).setSpeedValue(state, qd[i])
        model.realizeVelocity(state)
        tq = torch.tensor(q)
        ref = np.array([[markers.get(k).getLocationInGround(state).get(j) for j in range(3)]
                        for k in range(markers.getSize())])
        assert np.abs(mb.marker_positions(tq).numpy() - ref).max() < 1e-12
        rot, pos = mb.body_poses(tq)
        for b, name in enumerate(mb.body_names):
            x_gb = model.getBodySet().get(name).getTransformInGround(state)
            assert np.allclose(pos[b].numpy(), [x_gb.p().get(j) for j in range(3)],
                               rtol=0, atol=1e-12)
            assert np.allclose(rot[b].numpy(), [[x_gb.R().get(i, j) for j in range(3)]
                                                for i in range(3)], rtol=0, atol=1e-12)
        mat = opensim.Matrix()
        model.getMatterSubsystem().calcM(state, mat)
        ref_m = np.array([[mat.get(mob[i], mob[j]) for j in range(n)] for i in range(n)])
        assert np.abs(mb.mass_matrix(tq).numpy() - ref_m).max() < 1e-12
        udot = opensim.Vector(n, 0.0)
        for i in range(n):
            udot.set(mob[i], qdd[i])
        tau = solver.solve(state, udot)
        ref_tau = np.array([tau.get(mob[i]) for i in range(n)])
        ours = mb.inverse_dynamics(tq, torch.tensor(qd), torch.tensor(qdd)).numpy()
        assert np.abs(ours - ref_tau).max() < 1e-10


def test_contact_sphere_exported_and_placed(tiny):
    model, state, desc, mb = tiny
    (sphere,) = desc["contact_spheres"]
    assert sphere["body"] == "link5" and sphere["radius"] == 0.03
    assert sphere["stiffness"] == 1e6 and sphere["dissipation"] == 2.0
    q = torch.zeros(mb.num_coordinates, dtype=torch.float64)
    for i in range(mb.num_coordinates):
        model.getCoordinateSet().get(i).setValue(state, 0.0, False)
    model.realizePosition(state)
    x_gb = model.getBodySet().get("link5").getTransformInGround(state)
    ref = x_gb.shiftFrameStationToBase(V(0.05, -0.02, 0.0))
    assert np.allclose(mb.contact_positions(q)[0].numpy(), [ref.get(j) for j in range(3)],
                       rtol=0, atol=1e-14)


def _lagrange_forces(mb, q, qd, qdd):
    """tau = M qdd + dM/dt qd - 1/2 d(qd^T M qd)/dq + dV/dq, all by autograd."""
    q = q.clone().requires_grad_(True)
    mass = mb.mass_matrix(q)
    dmass = torch.autograd.functional.jacobian(mb.mass_matrix, q)  # (N, N, N)
    mdot_qd = torch.einsum("ijk,k,j->i", dmass, qd, qd)
    dke = 0.5 * torch.einsum("jki,j,k->i", dmass, qd, qd)
    g = mb.tree.gravity
    grav = torch.tensor(g, dtype=q.dtype)

    def potential(x):
        rot, pos = mb.body_poses(x)
        com = pos + (rot @ torch.tensor(mb.tree.com, dtype=x.dtype).unsqueeze(-1))[..., 0]
        return -(torch.tensor(mb.tree.mass, dtype=x.dtype) * (com @ grav)).sum()

    dv = torch.autograd.grad(potential(q), q)[0]
    return (mass @ qdd + mdot_qd - dke + dv).detach()


def test_exact_mode_satisfies_lagrange_and_differs_from_simbody_only_by_hdot(tiny):
    _, _, desc, mb = tiny
    exact = Multibody.from_tree(desc, torch.float64, simbody_hdot=False)
    gen = torch.Generator().manual_seed(0)
    q = torch.rand(mb.num_coordinates, generator=gen, dtype=torch.float64) - 0.5
    qd = torch.randn(mb.num_coordinates, generator=gen, dtype=torch.float64)
    qdd = torch.randn(mb.num_coordinates, generator=gen, dtype=torch.float64)
    lagrange = _lagrange_forces(mb, q, qd, qdd)
    assert torch.allclose(exact.inverse_dynamics(q, qd, qdd), lagrange, rtol=0, atol=1e-10)
    # The custom joint's third rotation is a polynomial of c1 (its first coordinate), so
    # Simbody's approximation of HDot shows up at speed; it vanishes when only c2 moves.
    simbody = mb.inverse_dynamics(q, qd, qdd)
    assert (simbody - lagrange).abs().max() > 1e-6
    qd_c2 = torch.zeros_like(qd)
    qd_c2[mb.coordinate_names.index("c2")] = 1.0
    assert torch.allclose(mb.inverse_dynamics(q, qd_c2, qdd),
                          exact.inverse_dynamics(q, qd_c2, qdd), rtol=0, atol=1e-12)


def test_gradcheck_fk_id_and_rk4(tiny):
    *_, mb = tiny
    gen = torch.Generator().manual_seed(1)
    n = mb.num_coordinates

    def rand(*shape):
        return (torch.rand(*shape, n, generator=gen, dtype=torch.float64) - 0.5).requires_grad_()

    q, qd, qdd = rand(2), rand(2), rand(2)  # a batch of two: the batch path is checked too
    assert torch.autograd.gradcheck(mb.marker_positions, (q,))
    assert torch.autograd.gradcheck(mb.inverse_dynamics, (q, qd, qdd))
    tau = rand(2)
    ode = MultibodyODE(mb, tau)
    y = torch.cat([q, qd], -1).detach().requires_grad_()
    # fast mode (random projections of the Jacobian) keeps the RK4 checks to seconds
    assert torch.autograd.gradcheck(lambda yy: rk4_step(ode, 0.0, yy, 1e-3), (y,),
                                    fast_mode=True)
    ode_tau = lambda t_: rk4_step(MultibodyODE(mb, t_), 0.0, y.detach(), 1e-3)  # noqa: E731
    assert torch.autograd.gradcheck(ode_tau, (tau,), fast_mode=True)


def test_integrators_conserve_energy_without_torque(tiny):
    *_, mb = tiny
    n = mb.num_coordinates
    zero = torch.zeros(n, dtype=torch.float64)
    ode = MultibodyODE(mb, zero)
    q0 = torch.linspace(-0.5, 0.5, n, dtype=torch.float64)
    y0 = torch.cat([q0, torch.linspace(0.3, -0.3, n, dtype=torch.float64)])
    exact = Multibody.from_tree(mb.tree.description, torch.float64, simbody_hdot=False)
    ode_exact = MultibodyODE(exact, zero)

    def energy(y):
        q, qd = y[..., :n], y[..., n:]
        rot, pos = exact.body_poses(q)
        com = pos + (rot @ torch.tensor(exact.tree.com).unsqueeze(-1))[..., 0]
        pot = -(torch.tensor(exact.tree.mass) * (com @ torch.tensor(exact.tree.gravity))).sum(-1)
        kin = 0.5 * (qd.unsqueeze(-2) @ exact.mass_matrix(q) @ qd.unsqueeze(-1))[..., 0, 0]
        return kin + pot

    traj = integrate(ode_exact, y0, 0.0, 1e-3, 100, method="rk4")
    e = energy(traj)
    assert (e - e[0]).abs().max() < 1e-6 * e.abs().max()
    # semi-implicit Euler converges to the same motion at first order in dt
    errors = [(integrate(ode_exact, y0, 0.0, 0.1 / k, k, "semi_implicit")[-1] - traj[100])
              .abs().max() for k in (25, 50)]
    assert 1.6 < errors[0] / errors[1] < 2.4
    # semi-implicit Euler matches its definition on one step
    q, qd = y0[:n], y0[n:]
    step = semi_implicit_euler_step(ode, 0.0, y0, 1e-3)
    qd1 = qd + 1e-3 * mb.forward_dynamics(q, qd, zero)
    assert torch.allclose(step, torch.cat([q + 1e-3 * qd1, qd1]))
    # batched ODE evaluation equals the per-sample one
    ys = torch.stack([y0, traj[-1]])
    assert torch.allclose(ode(0.0, ys)[1], ode(0.0, traj[-1]), rtol=0, atol=1e-12)

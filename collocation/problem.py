"""The tracking NLP of one window: Hermite-Simpson direct collocation, implicit dynamics.

Mirrors `osim.moco_track.build_study` (MocoTrack, Hermite-Simpson):
- states q, q' at the 2n+1 points of n mesh intervals (mesh points and midpoints, Moco's grid
  t0 + k * mesh_interval); accelerations q'' as controls at the same points; the implicit
  dynamics residual (inverse dynamics with contact minus actuator forces) is zero at every point;
- actuator controls u at mesh points, interpolated linearly at the midpoints (Moco's
  `interpolate_control_midpoints`), pelvis residuals within +-residual_bound;
- cost, integrated with Simpson's rule over the window (Moco's HS quadrature):
  states_weight * sum (q - q_ref)^2 (pelvis_ty weighted by pelvis_height_weight) +
  states_weight * sum (q' - q'_ref)^2 + effort_weight * sum w_a u_a^2, with w_a =
  residual_effort_factor for residuals and 1 otherwise; where the window has measured
  forces (force plates) and contact_tracking_weight > 0, + contact_tracking_weight / (m g) *
  sum over feet ||F_feet - F_plate||^2 (Moco's MocoContactTrackingGoal, `contact_tracking.py`),
  of the feet whose plate reading counts (`contact_tracking.tracked_feet`);
- initial q within initial_value_bound and q' within initial_speed_bound of the reference;
  clamped coordinates within their ranges, speeds within +-50 (Moco's default bounds).
Exact first and second derivatives come from CasADi's AD; IPOPT with MUMPS, one thread.
The guess: the reference states (pelvis height settled onto the contact model, see
`settle_height`), its accelerations, and the controls of inverse dynamics; or a solution of the
window (`Window.guess`, e.g. Moco's: a warm start).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import casadi
import numpy as np

from .contact_tracking import body_weight, foot_groups, grf_tracking_integrand
from .dynamics import ModelSetup, build_functions

SPEED_BOUND = 50.0   # rad/s or m/s, Moco's default speed bounds


@dataclass
class Window:
    """Time grid and references of one window; arrays are (points, coordinates)."""
    times: np.ndarray        # (2n+1,) s, mesh points at even indices
    q_ref: np.ndarray
    qd_ref: np.ndarray
    qdd_ref: np.ndarray
    q_lower: np.ndarray      # (nf,) bounds on q (-inf/inf where unbounded)
    q_upper: np.ndarray
    u_lower: np.ndarray      # (A,)
    u_upper: np.ndarray
    # Measured force per foot (P, 3, 2) (N, ground; right, left) to track, or None, and which
    # foot's reading is tracked at each point (P, 2) bool (contact_tracking.tracked_feet).
    grf: np.ndarray | None = None
    grf_tracked: np.ndarray | None = None
    # A solution of this window to start from instead of the reference (spec `guess`):
    # q, q', q'' and the generalized forces of the actuators, each (P, nf) on `times`.
    guess: dict | None = None


def tracked_weights(window: Window) -> np.ndarray:
    """(P, 2) 1.0 where a foot's plate reading is tracked, else 0 (every reading where the
    window does not say: Moco's rule)."""
    if window.grf_tracked is None:
        return np.ones((len(window.times), 2))
    return window.grf_tracked.astype(float)


@dataclass
class Solution:
    success: bool
    status: str
    iterations: int
    objective: float
    nlp_seconds: float
    q: np.ndarray            # (2n+1, nf)
    qd: np.ndarray
    qdd: np.ndarray
    u: np.ndarray            # (2n+1, A), midpoints interpolated


def simpson_weights(n: int, h: float) -> np.ndarray:
    w = np.zeros(2 * n + 1)
    w[0:-1:2] += h / 6.0
    w[2::2] += h / 6.0
    w[1::2] += 4.0 * h / 6.0
    return w


def _control_interpolation(n: int) -> np.ndarray:
    """(n+1, 2n+1) map from mesh-point controls to all points (midpoints averaged)."""
    m = np.zeros((n + 1, 2 * n + 1))
    for k in range(n + 1):
        m[k, 2 * k] = 1.0
    for k in range(n):
        m[k, 2 * k + 1] = m[k + 1, 2 * k + 1] = 0.5
    return m


def state_weights(setup: ModelSetup, settings) -> np.ndarray:
    w = np.ones(len(setup.free))
    names = setup.free_names
    if "pelvis_ty" in names:
        w[names.index("pelvis_ty")] = settings.pelvis_height_weight
    return w


def control_weights(setup: ModelSetup, settings) -> np.ndarray:
    return np.array([settings.residual_effort_factor if a.startswith("residual_") else 1.0
                     for a in setup.actuator_names])


def settle_height(functions, setup: ModelSetup, window: Window, limit: float) -> np.ndarray:
    """The reference with pelvis_ty shifted by the constant (within +-limit, m) that lets the
    contact spheres carry the body best: least squares of the vertical force the pelvis
    residual would need. Marker-based IK leaves the feet millimetres in or above the contact
    model's floor, and with 1e6 N/m^2 spheres a few millimetres decide between flying and
    sinking. From the unshifted reference, one of six synthetic squats started twice as far from
    feasibility and wandered (objective 1000x Moco's after 90 iterations); shifted, it
    converged in 34."""
    names = setup.free_names
    if "pelvis_ty" not in names:
        return window.q_ref
    k = names.index("pelvis_ty")
    inverse = functions["inverse"].map(len(window.times))

    def need(dy):
        q = window.q_ref.copy()
        q[:, k] += dy
        tau = np.array(inverse(q.T, window.qd_ref.T, window.qdd_ref.T))  # (nf, P)
        return float(np.sum(tau[k] ** 2))

    grid = np.linspace(-limit, limit, 41)
    best = grid[int(np.argmin([need(dy) for dy in grid]))]
    step = grid[1] - grid[0]
    fine = np.linspace(best - step, best + step, 21)
    best = fine[int(np.argmin([need(dy) for dy in fine]))]
    q = window.q_ref.copy()
    q[:, k] += best
    return q


def guess_controls(functions, setup: ModelSetup, window: Window, q: np.ndarray) -> np.ndarray:
    """Controls that make inverse dynamics of (q, the reference's speeds and accelerations) hold
    (per coordinate: the needed force split over its actuators by optimal force), clipped to
    the control bounds."""
    inverse = functions["inverse"].map(len(window.times))
    tau = np.array(inverse(q.T, window.qd_ref.T, window.qdd_ref.T)).T  # (P, nf)
    return controls_for(setup, window, tau)


def controls_for(setup: ModelSetup, window: Window, tau: np.ndarray) -> np.ndarray:
    """(P, A) controls giving the generalized forces tau (P, nf): each coordinate's force split
    over its actuators by optimal force, clipped to the control bounds."""
    coord = np.array(setup.actuator_coordinate)
    total = np.zeros(len(setup.free))
    np.add.at(total, coord, setup.optimal_force)
    u = tau[:, coord] / np.where(total[coord] > 0, total[coord], 1.0)
    return np.clip(u, window.u_lower, window.u_upper)


def _grf_point(functions, setup: ModelSetup, nf: int) -> casadi.Function:
    """(q, q', plate (8,) = measured right xyz, left xyz, tracked right, left) -> the
    contact-tracking integrand / (m g) at one point (N; see `contact_tracking.py`)."""
    q, qd, plate = casadi.SX.sym("q", nf), casadi.SX.sym("qd", nf), casadi.SX.sym("plate", 8)
    forces, _ = functions["contact"](q, qd)
    value = grf_tracking_integrand(forces, casadi.reshape(plate[:6], 3, 2), foot_groups(setup),
                                   body_weight(setup.tree), plate[6:])
    return casadi.Function("grf_point", [q, qd, plate], [value], {"cse": True})


def _point_derivatives(functions, nf: int, grf_point: casadi.Function | None = None):
    """Per-point SX functions of z = (q, q', q''): the Jacobian of inverse dynamics and the
    Hessian of lam . inverse dynamics (+ s * the contact-tracking integrand, with the plate data
    of `_grf_point` and s as inputs, where plates are tracked). Every other nonlinear term of
    the NLP lives in one point's inverse dynamics (the cost is quadratic, collocation linear,
    actuators enter linearly), so the NLP's Jacobian and Hessian are these blocks plus
    constants. Assembled by hand they cost a fraction of what CasADi's generic MX derivatives
    of the mapped function cost."""
    z = casadi.SX.sym("z", 3 * nf)
    lam = casadi.SX.sym("lam", nf)
    tau = functions["inverse"](z[:nf], z[nf:2 * nf], z[2 * nf:])
    jac = casadi.jacobian(tau, z)
    lagrangian, inputs = casadi.dot(lam, tau), [z, lam]
    if grf_point is not None:
        plate, s = casadi.SX.sym("plate", 8), casadi.SX.sym("s")
        lagrangian = lagrangian + s * grf_point(z[:nf], z[nf:2 * nf], plate)
        inputs += [plate, s]
    hess = casadi.hessian(lagrangian, z)[0]
    # No common-subexpression elimination here: on these graphs (about 260k instructions for
    # the 21-coordinate model's Hessian) it costs 1.4-3 s per window to build and saves only
    # ~20 % per evaluation: a 1.4 s squat took 7.2 CPU s instead of 9.3, a 0.5 s window of real
    # walking (68 iterations) 19.5 instead of 22.1, at identical iterates.
    opts = {"cse": False}
    return (casadi.Function("jac_point", [z], [jac], opts),
            casadi.Function("hess_point", inputs, [hess], opts))


def build_nlp(setup: ModelSetup, window: Window, settings):
    """(nlp {'x', 'p', 'f', 'g'} in MX, bounds {'lbx', 'ubx', 'lbg', 'ubg'}, guess x0,
    derivative functions {'jac_g', 'hess_lag'} for nlpsol).

    x = [z_0 .. z_P-1, u_0 .. u_n]: z_k = (q, q', q'') at point k (mesh points and midpoints
    in time order), u_j the controls at mesh point j. g = [inverse dynamics - actuator forces
    at every point, divided by the model's mass; HS midpoint constraints; HS defects]."""
    functions = build_functions(setup)
    nf, na, npts = len(setup.free), len(setup.actuator_names), len(window.times)
    n = (npts - 1) // 2
    h = float(window.times[2] - window.times[0])
    nz = 3 * nf

    x = casadi.MX.sym("x", nz * npts + na * (n + 1))
    # p scales the tracking term (1 in `solve`; a homotopy or a weight study may vary it
    # without rebuilding the NLP).
    p = casadi.MX.sym("p")
    Z = casadi.reshape(x[:nz * npts], nz, npts)
    U = casadi.reshape(x[nz * npts:], na, n + 1)
    Q, QD, QDD = Z[:nf, :], Z[nf:2 * nf, :], Z[2 * nf:, :]
    # Sparse constants: a dense DM would make every residual depend on every control.
    U_all = casadi.mtimes(U, casadi.sparsify(casadi.DM(_control_interpolation(n))))

    drive = np.zeros((nf, na))
    for a, c in enumerate(setup.actuator_coordinate):
        drive[c, a] = setup.optimal_force[a]
    mass = float(np.sum(setup.tree.mass))  # residuals in units of acceleration for IPOPT
    tau = functions["inverse"].map(npts)(Q, QD, QDD)
    actuated = casadi.mtimes(casadi.sparsify(casadi.DM(drive)), U_all)
    X, F = casadi.vertcat(Q, QD), casadi.vertcat(QD, QDD)
    x0, xm, x1 = X[:, 0:npts - 1:2], X[:, 1::2], X[:, 2::2]
    f0, fm, f1 = F[:, 0:npts - 1:2], F[:, 1::2], F[:, 2::2]
    midpoint = xm - 0.5 * (x0 + x1) - (h / 8.0) * (f0 - f1)
    defect = x1 - x0 - (h / 6.0) * (f0 + 4.0 * fm + f1)
    linear = casadi.vertcat(-casadi.vec(actuated) / mass, casadi.vec(midpoint),
                            casadi.vec(defect))
    g = linear + casadi.vertcat(casadi.vec(tau) / mass, casadi.MX(linear.shape[0] - nf * npts, 1))

    ws = casadi.DM(state_weights(setup, settings))
    wu = casadi.DM(control_weights(setup, settings))
    dq, dqd = Q - casadi.DM(window.q_ref.T), QD - casadi.DM(window.qd_ref.T)
    quadrature = casadi.DM(simpson_weights(n, h))
    # Only the optimized coordinates: MocoTrack gives the dependent coordinate of a
    # CoordinateCouplerConstraint (the patella's knee_angle_r_beta) tracking weight 0.
    per_point = casadi.mtimes(ws.T, dq ** 2) + casadi.sum1(dqd ** 2)
    tracking = casadi.mtimes(settings.states_weight * per_point, quadrature)
    effort = casadi.mtimes(settings.effort_weight * casadi.mtimes(wu.T, U_all ** 2), quadrature)
    objective = p * tracking + effort
    grf_point = None
    if window.grf is not None and settings.contact_tracking_weight > 0:
        # Moco's MocoContactTrackingGoal: weight / (m g) * integral of sum over feet of
        # ||F_model - F_measured||^2 (contact_tracking.py), Simpson like the terms above, over
        # the feet whose plate reading counts.
        grf_point = _grf_point(functions, setup, nf)
        tracked = tracked_weights(window)
        # (8, P): per point measured right xyz, left xyz, then tracked right, left
        plate = casadi.DM(np.hstack([window.grf.transpose(0, 2, 1).reshape(npts, 6),
                                     tracked]).T)
        contact = settings.contact_tracking_weight * casadi.mtimes(
            grf_point.map(npts)(Q, QD, plate), quadrature)
        objective = objective + contact

    # Constant parts of the derivatives, evaluated once (the expressions are linear/quadratic).
    zero = np.zeros(x.shape[0])
    jac_linear = casadi.Function("jl", [x], [casadi.jacobian(linear, x)])(zero)
    hess_tracking = casadi.Function("ht", [x], [casadi.hessian(tracking, x)[0]])(zero)
    hess_effort = casadi.Function("he", [x], [casadi.hessian(effort, x)[0]])(zero)
    jac_point, hess_point = _point_derivatives(functions, nf, grf_point)
    nu = na * (n + 1)

    blocks = casadi.horzsplit(jac_point.map(npts)(Z), nz)
    jac_nl = casadi.vertcat(
        casadi.horzcat(casadi.diagcat(*blocks) / mass, casadi.MX(nf * npts, nu)),
        casadi.MX(linear.shape[0] - nf * npts, x.shape[0]))
    jac_g = casadi.Function("jac_g", [x, p], [g, jac_nl + jac_linear], ["x", "p"],
                            ["g", "jac_g_x"])
    lam_f, lam_g = casadi.MX.sym("lam_f"), casadi.MX.sym("lam_g", g.shape[0])
    lam_points = casadi.reshape(lam_g[:nf * npts], nf, npts) / mass
    point_args = [Z, lam_points]
    if grf_point is not None:
        point_args += [plate, lam_f * settings.contact_tracking_weight * quadrature.T]
    blocks = casadi.horzsplit(hess_point.map(npts)(*point_args), nz)
    hess_nl = casadi.diagcat(*blocks, casadi.MX(nu, nu))
    hess = casadi.triu(lam_f * (p * hess_tracking + hess_effort) + hess_nl)
    hess_lag = casadi.Function("hess_lag", [x, p, lam_f, lam_g], [hess],
                               ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"])

    inf = np.inf
    q_lo = np.tile(window.q_lower[:, None], (1, npts))
    q_hi = np.tile(window.q_upper[:, None], (1, npts))
    qd_lo, qd_hi = np.full((nf, npts), -SPEED_BOUND), np.full((nf, npts), SPEED_BOUND)
    b0 = settings.initial_value_bound
    q_lo[:, 0] = np.maximum(q_lo[:, 0], window.q_ref[0] - b0)
    q_hi[:, 0] = np.minimum(q_hi[:, 0], window.q_ref[0] + b0)
    qd_lo[:, 0] = window.qd_ref[0] - settings.initial_speed_bound
    qd_hi[:, 0] = window.qd_ref[0] + settings.initial_speed_bound
    u_lo = np.tile(window.u_lower[:, None], (1, n + 1))
    u_hi = np.tile(window.u_upper[:, None], (1, n + 1))
    free = np.full((nf, npts), inf)
    lbx = np.concatenate([np.vstack([q_lo, qd_lo, -free]).ravel(order="F"),
                          u_lo.ravel(order="F")])
    ubx = np.concatenate([np.vstack([q_hi, qd_hi, free]).ravel(order="F"),
                          u_hi.ravel(order="F")])

    if window.guess is None:
        q_guess = settle_height(functions, setup, window, 0.6 * settings.initial_value_bound)
        qd_guess, qdd_guess = window.qd_ref, window.qdd_ref
        u_guess = guess_controls(functions, setup, window, q_guess)[0::2]  # (n+1, A) mesh pts
    else:
        q_guess, qd_guess, qdd_guess = (window.guess[k] for k in ("q", "qd", "qdd"))
        u_guess = controls_for(setup, window, window.guess["tau"])[0::2]
    z_guess = np.vstack([np.clip(q_guess.T, q_lo, q_hi),
                         np.clip(qd_guess.T, qd_lo, qd_hi), qdd_guess.T])
    x_guess = np.concatenate([z_guess.ravel(order="F"), u_guess.T.ravel(order="F")])

    nlp = {"x": x, "p": p, "f": objective, "g": g}
    bounds = {"lbx": lbx, "ubx": ubx, "lbg": 0.0, "ubg": 0.0}
    return nlp, bounds, x_guess, {"jac_g": jac_g, "hess_lag": hess_lag}


def variable_scales(window: Window, nf: int, n_controls: int) -> np.ndarray:
    """x = s * x~, per variable: q and the controls as they are (rad or m of order 1, controls
    in units of optimal force); q' and q'' of each coordinate by the largest |value| its
    reference reaches in the window (at least 1)."""
    qd = np.maximum(1.0, np.max(np.abs(window.qd_ref), axis=0))
    qdd = np.maximum(1.0, np.max(np.abs(window.qdd_ref), axis=0))
    per_point = np.concatenate([np.ones(nf), qd, qdd])
    return np.concatenate([np.tile(per_point, len(window.times)), np.ones(n_controls)])


def scale_nlp(nlp: dict, bounds: dict, x0: np.ndarray, derivatives: dict, s: np.ndarray):
    """The NLP of `build_nlp` in x~ = x / s, with its derivatives by the chain rule
    (J~ = J diag(s), H~ = diag(s) H diag(s), still upper triangular): the same problem, the
    same solutions, but the steps IPOPT takes depend on the units (its Hessian regularization
    adds a multiple of the identity, its barrier and line search are not scale invariant)."""
    xs, p = casadi.MX.sym("x", len(s)), nlp["p"]
    x = casadi.DM(s) * xs
    f, g = casadi.Function("fg", [nlp["x"], p], [nlp["f"], nlp["g"]])(x, p)
    diag = casadi.DM(casadi.Sparsity.diag(len(s)), s)
    g_value, jac = derivatives["jac_g"](x, p)
    jac_g = casadi.Function("jac_g", [xs, p], [g_value, casadi.mtimes(jac, diag)],
                            ["x", "p"], ["g", "jac_g_x"])
    lam_f, lam_g = casadi.MX.sym("lam_f"), casadi.MX.sym("lam_g", g.shape[0])
    hess = derivatives["hess_lag"](x, p, lam_f, lam_g)
    hess_lag = casadi.Function("hess_lag", [xs, p, lam_f, lam_g],
                               [casadi.mtimes(diag, casadi.mtimes(hess, diag))],
                               ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"])
    scaled_bounds = {**bounds, "lbx": bounds["lbx"] / s, "ubx": bounds["ubx"] / s}
    return ({"x": xs, "p": p, "f": f, "g": g}, scaled_bounds, x0 / s,
            {"jac_g": jac_g, "hess_lag": hess_lag})


def unpack(xs: np.ndarray, nf: int, na: int, npts: int):
    """(q, q', q'' as (P, nf), u at every point (P, A)) from the NLP's variables."""
    n = (npts - 1) // 2
    z = xs[:3 * nf * npts].reshape((3 * nf, npts), order="F")
    u_mesh = xs[3 * nf * npts:].reshape((na, n + 1), order="F")
    return (z[:nf].T, z[nf:2 * nf].T, z[2 * nf:].T,
            (u_mesh @ _control_interpolation(n)).T)


def solve(setup: ModelSetup, window: Window, settings) -> Solution:
    """Build and solve the NLP of one window (see the module docstring)."""
    nlp, bounds, x_guess, derivatives = build_nlp(setup, window, settings)
    nf, na, npts = len(setup.free), len(setup.actuator_names), len(window.times)
    s = np.ones(len(x_guess))
    if settings.scale_variables:
        # Speeds and accelerations in units of their reference's largest value: unscaled, a
        # walk's q'' (up to 60 rad/s^2) beside q (1 rad) steered IPOPT's early steps into
        # optima with 1.7-5x Moco's objective on all four synthetic walks of the default cohort
        # (mesh 0.0125 s); scaled, S01, S02 and S04 end within 3 % of Moco's, and the real
        # trial's 1 s window takes 28 iterations instead of 140 (docs/engine.md).
        s = variable_scales(window, nf, len(x_guess) - 3 * nf * npts)
        nlp, bounds, x_guess, derivatives = scale_nlp(nlp, bounds, x_guess, derivatives, s)
    tol, ctol = settings.convergence_tolerance, settings.constraint_tolerance
    # Only `tol` and `constr_viol_tol`, as Moco sets them. Loosening compl_inf_tol with them
    # let IPOPT stop with the barrier still holding bound-active coordinates away from their
    # bounds (a standing knee 1.5 deg off its 0 limit, twice Moco's objective).
    # The guess (reference + inverse dynamics) lies near the optimum: a small initial barrier
    # parameter keeps IPOPT there. On six synthetic squats, mu_init 1e-3 instead of IPOPT's 0.1
    # cut 17-62 iterations to 13-15 at the same objectives (within 0.9 % of Moco's).
    # mumps_mem_percent: IPOPT's default (1000) has MUMPS allocate 11x its workspace estimate
    # at every factorization, and the page faults cost system time: on a 1 s window of real
    # walking (140 iterations) 5.3 of 64.6 CPU s, 0.4 with 50, at identical iterates. Where
    # the estimate falls short, IPOPT raises the percentage and factorizes again.
    ipopt = {"linear_solver": "mumps", "mumps_mem_percent": 50,
             "hessian_approximation": "exact", "mu_init": 1e-3,
             "max_iter": int(settings.max_iterations), "tol": tol, "constr_viol_tol": ctol,
             "print_level": 5, "print_frequency_iter": 10,
             "print_timing_statistics": "yes"}
    solver = casadi.nlpsol("track", "ipopt", nlp,
                           {"ipopt": ipopt, "print_time": True, "error_on_fail": False,
                            **derivatives})
    started = time.perf_counter()
    result = solver(x0=x_guess, p=1.0, **bounds)
    seconds = time.perf_counter() - started
    stats = solver.stats()
    iterations = int(stats.get("iter_count", 0))
    status = str(stats.get("return_status", "unknown"))
    q, qd, qdd, u = unpack(np.array(result["x"]).ravel() * s, nf, na, npts)
    return Solution(
        success=status in ("Solve_Succeeded", "Solved_To_Acceptable_Level"),
        status=status, iterations=iterations,
        objective=float(result["f"]), nlp_seconds=seconds, q=q, qd=qd, qdd=qdd, u=u)

"""Compartmental NEURON models of cortical neurons for TMS: L2/3 and L5 pyramidal cells, L4 large
basket cells, two morphological variants each.

Morphologies are built procedurally, following the layout of the adult-human versions of the Blue
Brain cells that Aberra et al. used for TMS (Aberra, Peterchev & Grill 2018, J Neural Eng
15:066023; Aberra, Wang, Grill & Peterchev 2020, Brain Stimul 13:175-189): soma, dendrites and a
myelinated axon with nodes of Ranvier, whose collaterals end in unmyelinated terminals. In those
models TMS activates axon terminals and bends of the axon first, so the axonal arbour is drawn
with care and the dendrites more coarsely.

Frame: the soma centre is the origin, z is the local cortical normal pointing to the pia, x and y
are tangential; lengths in um. ``Cell.segment_positions_um()`` gives every compartment's centre in
this frame, the frame in which E-field vectors are handed to ``core.tms.threshold``.

Dimensions (all cells)
----------------------
==========================  =====================================================================
soma                        cylinder, length = diameter (area of the equal sphere)
axon hillock                10 um (L4 LBC 5 um), tapering from ~2x to 1x the AIS diameter
axon initial segment (AIS)  40 um (L4 LBC 25 um); hillock + AIS = 50 um, the pre-myelin segment
                            of Aberra 2018; AIS length 20-60 um in cortex (Kole & Stuart 2012)
internode length            100 x axon diameter, 70 x on terminal branches (Aberra 2018, after
                            the classic L ~ 100 D rule of Rushton 1951), at least 20 um; the
                            first internode of the main axon is 50 um, putting the first node
                            ~100 um from the soma as in L5 PCs (Kole 2011 Neuron 71:671), which
                            lets antidromic spikes invade the AIS and soma
node of Ranvier             1 um long, axon diameter (Aberra 2018; cortical nodes are 0.5-2 um,
                            Arancibia-Carcamo et al. 2017 eLife 6:e23329)
myelin                      cm = 0.02 uF/cm2, g_pas = 1/1.125e6 S/cm2 per axolemma area (Eyal et
                            al. 2014/2016 as used by Aberra 2018): ~25 wraps in series
unmyelinated terminal       10 um (heminode and terminal bouton region), 0.6 -> 0.5 x the
                            diameter of its branch (>= 0.3 um), with the Na/K channels of the
                            AIS (Aberra 2018 "unmyelinated" sections)
axial resistivity           Ra = 100 ohm cm (Aberra 2018; Hay et al. 2011 use 100)
membrane                    cm = 1 uF/cm2 (soma, axon), 2 uF/cm2 on spiny pyramidal dendrites
                            (spine area, Hay 2011 / Blue Brain); g_pas = 3e-5 S/cm2
==========================  =====================================================================

Diameters are those of adult human cells: Aberra 2018 scale the (juvenile rat) Blue Brain
diameters by ~1.9 (dendrites) and 2.45 (axon, soma area) for human cells, which puts main axons at
1.5-2 um and collaterals at ~1 um (human cortical axons: Liewald et al. 2014 Biol Cybern 108:541).

Per cell type (variant 0 / variant 1)
-------------------------------------
L5_PC, thick-tufted layer 5 pyramidal cell (Hay et al. 2011; human: Beaulieu-Laroche et al. 2018
Cell 175:643, longer and thicker trunks than rat):
    soma 28 um; apical trunk 1000 / 800 um tapering 5.0 -> 2.5 um with 8 / 6 oblique dendrites
    (60 um stem 1.2 um + two 150 um branches 0.8 -> 0.5 um) and a tuft of 2 branches (150 um,
    2.0 -> 1.2 um) bifurcating once (250 um, 1.0 -> 0.5 um); 7 / 6 basal dendrites (40 um,
    2.0 -> 1.5 um, then two 180 um, 1.0 -> 0.5 um). Main axon 2.0 um (internodes 200 um) into
    the white matter: 2000 um straight down (v0) / 900 um down, a bend of ~80 deg over 60 um and
    800 um tangentially in the white matter (v1); the truncated end acts as a terminal.
    Recurrent collaterals (1.2 um, branches 0.9 um, 10 um terminals): 5 (v0) / 4 (v1) at nodes
    150-950 um below the soma, mostly tangential, one ascending to layer 2/3 (Larsen & Callaway
    2006 J Comp Neurol 494:398); 14 / 12 terminals.
L23_PC, layer 2/3 pyramidal cell (human: Mohan et al. 2015 Cereb Cortex 25:4839; Eyal et al.
2016 eLife 5:e16553):
    soma 20 um; apical trunk 350 / 250 um, 3.5 -> 2.0 um, 5 / 4 obliques, tuft of 3 / 2 branches
    (150 um, 1.6 -> 1.0 um) bifurcating once (200 um, 0.8 -> 0.4 um); 6 / 5 basal dendrites
    (30 um, 1.6 -> 1.2 um, then two 170 um, 0.9 -> 0.5 um). Main axon 1.5 um (internodes 150 um)
    descending 1800 um (v0) / 20 deg off the normal for 1400 um, then bending tangentially (v1).
    Collaterals (1.0 um, branches 0.8 um) in two tiers, layer 2/3 (100-300 um below the soma)
    and layer 5 (950-1150 um below), as in Feldmeyer et al. 2006 J Physiol 575:583; 10 / 8
    terminals.
L4_LBC, layer 4 large basket cell (Wang et al. 2002 Cereb Cortex 12:395; Markram et al. 2004 Nat
Rev Neurosci 5:793; myelinated basket-cell axons: Micheva et al. 2016 eLife 5:e15784):
    soma 18 um; 6 / 5 aspiny multipolar dendrites (30 um, 2.0 -> 1.2 um, then two 180 / 150 um,
    1.0 -> 0.5 um), cm = 1. Axon 1.2 um ascending (v0) / descending (v1) 150 / 200 um, then a
    horizontal arbour ~1 mm across: 4 / 3 collaterals (250 um, 1.0 um) branching twice (200 and
    150 um, 0.8 um); 16 / 12 terminals.

Channels (``core/tms/mod``; Aberra 2018 place the Hay 2011 / Blue Brain axonal channels on the
AIS, nodes and unmyelinated axon, with twice the AIS Na density at nodes): ``nat`` transient Na
(axonal form: 3.9 S/cm2 AIS/terminals, 7.8 S/cm2 nodes; somatic form 1.0 S/cm2), ``kv31`` Kv3.1
(0.47 S/cm2 axon, 0.34 S/cm2 soma in pyramidal cells, the Blue Brain L5 TTPC values; doubled in
the fast-spiking basket cell), ``pas`` leak; dendrites passive. E_Na = 50 mV, E_K = -85 mV.
Resting potential -75 mV (the v_init of Aberra 2018/2020): the leak reversal of each compartment
is set so that -75 mV is an exact steady state, so no settling time is simulated.

NEURON's state is global: every section that exists is simulated. A ``Cell`` owns its sections;
``Cell.delete()`` (or dropping the last reference) removes them. ``get_cell`` keeps one cell per
process, which is what threshold loops in joblib workers want.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError
from core.tms.mechanisms import load_mechanisms

__all__ = [
    "CELL_TYPES",
    "N_VARIANTS",
    "V_REST_MV",
    "CELSIUS",
    "Cell",
    "build_cell",
    "get_cell",
    "release_cell",
]

CELL_TYPES = ("L23_PC", "L4_LBC", "L5_PC")
N_VARIANTS = {"L23_PC": 2, "L4_LBC": 2, "L5_PC": 2}
V_REST_MV = -75.0
CELSIUS = 37.0

NODE_LENGTH_UM = 1.0
INTERNODE_PER_DIAMETER = 100.0
INTERNODE_PER_DIAMETER_TERMINAL = 70.0
MIN_INTERNODE_UM = 20.0
TERMINAL_LENGTH_UM = 10.0
FIRST_INTERNODE_UM = 50.0
MYELIN_CM_UF_PER_CM2 = 0.02
MYELIN_G_S_PER_CM2 = 1.0 / 1.125e6
RA_OHM_CM = 100.0
G_PAS_S_PER_CM2 = 3e-5
E_NA_MV = 50.0
E_K_MV = -85.0

# Longest compartment per section kind (um): fine where TMS initiates spikes (terminals, AIS),
# coarse on passive dendrites and myelin. A 2.5x finer grid moves thresholds by < 0.5%
# (``tms_numerics`` in tests/bench_tms.py).
_MAX_SEGMENT_UM = {
    "soma": 1e9,
    "basal": 80.0,
    "apical": 80.0,
    "hillock": 1e9,
    "ais": 20.0,
    "myelin": 80.0,
    "node": 1e9,
    "unmyelinated": 20.0,
    "terminal": 10.0,
}
EXCITABLE_KINDS = ("soma", "hillock", "ais", "node", "unmyelinated", "terminal")


# ---------------------------------------------------------------------------------------------
# geometry helpers


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _direction(polar_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector at ``polar_deg`` from +z (the pia) and ``azimuth_deg`` from +x."""
    p, a = math.radians(polar_deg), math.radians(azimuth_deg)
    return np.array([math.sin(p) * math.cos(a), math.sin(p) * math.sin(a), math.cos(p)])


def _tilt(direction, angle_deg: float, azimuth_deg: float) -> np.ndarray:
    """``direction`` tilted by ``angle_deg`` towards the azimuth ``azimuth_deg`` around it."""
    d = _unit(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _unit(np.cross(d, helper))
    e2 = np.cross(d, e1)
    a, b = math.radians(angle_deg), math.radians(azimuth_deg)
    return _unit(math.cos(a) * d + math.sin(a) * (math.cos(b) * e1 + math.sin(b) * e2))


def _polyline(start, legs) -> np.ndarray:
    """Points of a path from ``start`` along ``legs`` = [(direction, length_um), ...]."""
    points = [np.asarray(start, dtype=float)]
    for direction, length in legs:
        points.append(points[-1] + _unit(direction) * length)
    return np.array(points)


def _arc(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _subpath(points: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """The part of a polyline between arc lengths ``s0`` and ``s1`` (um), bends included."""
    s = _arc(points)
    inner = [points[i] for i in range(len(points)) if s0 < s[i] < s1]
    return np.array([_point_at(points, s, s0), *inner, _point_at(points, s, s1)])


def _point_at(points: np.ndarray, s: np.ndarray, at: float) -> np.ndarray:
    return np.array([np.interp(at, s, points[:, k]) for k in range(3)])


# ---------------------------------------------------------------------------------------------
# morphology description, independent of NEURON


@dataclass
class _Section:
    name: str
    kind: str
    points_um: np.ndarray  # (k, 3) polyline, first point at the connection to the parent
    diameter_um: tuple[float, float]  # at the first and last point (linear taper)
    parent: int | None
    parent_x: float


@dataclass
class _Morphology:
    sections: list[_Section] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind, points, d0, d1=None, parent=None, parent_x=1.0) -> int:
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        self.sections.append(_Section(f"{kind}[{n}]", kind, np.asarray(points, float), (float(d0), float(d1 if d1 is not None else d0)), parent, parent_x))
        return len(self.sections) - 1

    def end(self, index: int) -> np.ndarray:
        return self.sections[index].points_um[-1]

    # --- dendrites --------------------------------------------------------------------------

    def dendrite(self, kind, parent, parent_x, start, direction, orders, rng, spread_deg=35.0):
        """A binary dendritic tree; ``orders`` = [(length_um, d0_um, d1_um), ...] per order."""
        length, d0, d1 = orders[0]
        direction = _tilt(direction, rng.normal(0.0, 4.0), rng.uniform(0, 360))  # mild jitter
        bend = _tilt(direction, rng.uniform(5, 15), rng.uniform(0, 360))
        points = _polyline(start, [(direction, length / 2), (bend, length / 2)])
        index = self.add(kind, points, d0, d1, parent, parent_x)
        if len(orders) > 1:
            azimuth = rng.uniform(0, 360)
            for side in (0.0, 180.0):
                child = _tilt(bend, spread_deg * rng.uniform(0.7, 1.3), azimuth + side)
                self.dendrite(kind, index, 1.0, points[-1], child, orders[1:], rng, spread_deg)
        return index

    # --- axon -------------------------------------------------------------------------------

    def myelinated(self, parent, parent_x, points, diameter_um, *, leaf: bool, inl_ratio=INTERNODE_PER_DIAMETER, first_internode_um=None):
        """Internode/node units along a path, ending in a node, or in an unmyelinated terminal
        when ``leaf``; the first internode may be given a length of its own. Returns
        [(node index, arc length of the node's end in um)], last index."""
        total = _arc(points)[-1]
        myelinated = total - (TERMINAL_LENGTH_UM if leaf else 0.0)
        internodes = []
        if first_internode_um is not None and myelinated >= first_internode_um + NODE_LENGTH_UM:
            internodes.append(first_internode_um)
            myelinated -= first_internode_um + NODE_LENGTH_UM
        unit = max(inl_ratio * diameter_um, MIN_INTERNODE_UM) + NODE_LENGTH_UM
        n = int(myelinated // unit)
        if n == 0 and myelinated >= MIN_INTERNODE_UM + NODE_LENGTH_UM:
            n = 1
        if n:
            internodes += [(myelinated - n * NODE_LENGTH_UM) / n] * n
        elif internodes:  # a remainder shorter than one unit lengthens the first internode
            internodes[0] += myelinated
        if not internodes:  # too short to myelinate (Aberra 2018 leave such sections bare)
            kind = "terminal" if leaf else "unmyelinated"
            tip = max(0.5 * diameter_um, 0.3) if leaf else diameter_um
            return [], self.add(kind, points, diameter_um, tip, parent, parent_x)
        nodes, last, last_x, s = [], parent, parent_x, 0.0
        for internode in internodes:
            last = self.add("myelin", _subpath(points, s, s + internode), diameter_um, None, last, last_x)
            s += internode
            last = self.add("node", _subpath(points, s, s + NODE_LENGTH_UM), diameter_um, None, last, 1.0)
            s += NODE_LENGTH_UM
            last_x = 1.0
            nodes.append((last, s))
        if leaf:
            tip = max(0.5 * diameter_um, 0.3)
            last = self.add("terminal", _subpath(points, s, total), max(0.6 * diameter_um, 0.3), tip, last, 1.0)
        return nodes, last

    def collateral(self, parent, start, tree):
        """A myelinated collateral: ``tree`` = (legs, diameter_um, [child trees]).

        ``legs`` = [(direction, length_um), ...]. Children leave at the branch's last node with
        their own legs. Leaves end in unmyelinated terminals."""
        legs, diameter, children = tree
        points = _polyline(start, legs)
        leaf = not children
        _, last = self.myelinated(parent, 1.0, points, diameter, leaf=leaf, inl_ratio=INTERNODE_PER_DIAMETER_TERMINAL if leaf else INTERNODE_PER_DIAMETER)
        for child in children:
            self.collateral(last, self.end(last), child)
        return last


def _soma(m: _Morphology, diameter_um: float) -> int:
    return m.add("soma", [[0, 0, -diameter_um / 2], [0, 0, diameter_um / 2]], diameter_um)


def _initial_segment(m, soma, soma_diam_um, direction, hillock_um, ais_um, ais_diam_um) -> int:
    """Hillock (tapering from 2x to 1x the AIS diameter) and AIS, from the soma along ``direction``."""
    start = np.array([0.0, 0.0, -soma_diam_um / 2]) if direction[2] <= 0 else np.array([0.0, 0.0, soma_diam_um / 2])
    hillock = m.add("hillock", _polyline(start, [(direction, hillock_um)]), 2 * ais_diam_um, ais_diam_um, soma, 0.0 if direction[2] <= 0 else 1.0)
    return m.add("ais", _polyline(m.end(hillock), [(direction, ais_um)]), ais_diam_um, ais_diam_um, hillock, 1.0)


def _branching(rng, legs, d, d_child, spans, d_leaf=None, angle_deg=30.0):
    """Collateral tree: a stem along ``legs`` (diameter ``d``) then binary branches of lengths
    ``spans`` (um per level) diverging by +-``angle_deg`` (a small random tilt on each)."""
    direction = _unit(legs[-1][0])

    def level(dir_, k):
        if k >= len(spans):
            return []
        out = []
        for sign in (-1, 1):
            child_dir = _tilt(dir_, angle_deg * rng.uniform(0.7, 1.3), (90 if sign > 0 else 270) + rng.normal(0, 20))
            diameter = d_child if k < len(spans) - 1 else (d_leaf or d_child)
            out.append(([(child_dir, spans[k] * rng.uniform(0.85, 1.15))], diameter, level(child_dir, k + 1)))
        return out

    return (legs, d, level(direction, 0))


# ---------------------------------------------------------------------------------------------
# the three cell types


def _pyramidal(p: dict, rng) -> _Morphology:
    m = _Morphology()
    soma = _soma(m, p["soma_um"])
    top = np.array([0.0, 0.0, p["soma_um"] / 2])
    # apical trunk in pieces, obliques at the joints
    n_pieces = len(p["oblique_heights_um"]) + 1
    heights = [0.0, *p["oblique_heights_um"], p["trunk_um"]]
    d_base, d_end = p["trunk_diam_um"]
    parent, parent_x = soma, 1.0
    trunk_dir = _tilt([0, 0, 1], p.get("trunk_tilt_deg", 0.0), 0.0)
    for k in range(n_pieces):
        d0 = d_base + (d_end - d_base) * heights[k] / p["trunk_um"]
        d1 = d_base + (d_end - d_base) * heights[k + 1] / p["trunk_um"]
        piece = m.add("apical", _polyline(top + trunk_dir * heights[k], [(trunk_dir, heights[k + 1] - heights[k])]), d0, d1, parent, parent_x)
        parent, parent_x = piece, 1.0
        if k < n_pieces - 1:
            azimuth = p["oblique_azimuth0_deg"] + 137.5 * k  # golden-angle spread around the trunk
            m.dendrite("apical", piece, 1.0, m.end(piece), _direction(rng.uniform(55, 75), azimuth), p["oblique_orders"], rng, 30.0)
    # tuft: first branches diverge from the trunk, then bifurcate towards the pia
    tuft_azimuth = rng.uniform(0, 360)
    for i in range(p["tuft_branches"]):
        direction = _direction(35.0, tuft_azimuth + 360.0 * i / p["tuft_branches"])
        m.dendrite("apical", parent, 1.0, m.end(parent), direction, p["tuft_orders"], rng, 25.0)
    # basal dendrites around the soma, pointing sideways and down
    for i in range(p["n_basal"]):
        direction = _direction(rng.uniform(95, 150), 360.0 * i / p["n_basal"] + rng.normal(0, 10))
        m.dendrite("basal", soma, 0.5, np.zeros(3), direction, p["basal_orders"], rng, 35.0)
    # axon: hillock + AIS, myelinated main axon, collaterals at its nodes
    ais = _initial_segment(m, soma, p["soma_um"], np.array([0.0, 0.0, -1.0]), 10.0, 40.0, p["axon_diam_um"])
    main_points = _polyline(m.end(ais), p["main_axon_legs"])
    nodes, _ = m.myelinated(ais, 1.0, main_points, p["axon_diam_um"], leaf=False, first_internode_um=FIRST_INTERNODE_UM)
    for depth_um, tree in p["collaterals"]:
        node, _ = min(nodes, key=lambda ns: abs(ns[1] - depth_um))  # branch at the nearest node
        m.collateral(node, m.end(node), tree)
    return m


# axon diameters (um): main axon (LBC: ascending/descending stem), collaterals, their branches
AXON_DIAMETERS_UM = {"L23_PC": (1.5, 1.0, 0.8), "L4_LBC": (1.2, 1.0, 0.8), "L5_PC": (2.0, 1.2, 0.9)}


def _l5_pc(variant: int) -> _Morphology:
    rng = np.random.default_rng(500 + variant)
    down = np.array([0.0, 0.0, -1.0])
    dm, dc, db = AXON_DIAMETERS_UM["L5_PC"]
    if variant == 0:
        legs = [(down, 2000.0)]
        collaterals = [
            (150.0, _branching(rng, [(_direction(100, 0), 250.0)], dc, db, [250.0, 150.0], db)),
            (300.0, _branching(rng, [(_direction(20, 200), 600.0)], dc, db, [200.0], db)),  # to L2/3
            (450.0, _branching(rng, [(_direction(95, 140), 300.0)], dc, db, [250.0, 150.0], db)),
            (600.0, _branching(rng, [(_direction(80, 260), 250.0)], dc, db, [300.0], db)),
            (950.0, _branching(rng, [(_direction(105, 60), 350.0)], dc, db, [250.0], db)),
        ]
        p = dict(soma_um=28.0, trunk_um=1000.0, trunk_diam_um=(5.0, 2.5), oblique_heights_um=[120, 240, 360, 480, 600, 700, 800, 880], n_basal=7)
    else:
        bend = _direction(60, 30)
        legs = [(down, 900.0), (bend, 60.0), (_direction(100, 30), 800.0)]  # into the white matter, then tangential
        collaterals = [
            (200.0, _branching(rng, [(_direction(85, 300), 300.0)], dc, db, [250.0, 150.0], db)),
            (350.0, _branching(rng, [(_direction(30, 120), 500.0)], dc, db, [200.0], db)),
            (550.0, _branching(rng, [(_direction(100, 200), 300.0)], dc, db, [250.0], db)),
            (800.0, _branching(rng, [(_direction(75, 60), 250.0)], dc, db, [250.0, 150.0], db)),
        ]
        p = dict(soma_um=28.0, trunk_um=800.0, trunk_diam_um=(5.0, 2.5), oblique_heights_um=[120, 250, 380, 500, 620, 720], n_basal=6)
    p.update(
        oblique_azimuth0_deg=30.0,
        oblique_orders=[(60.0, 1.2, 1.0), (150.0, 0.8, 0.5)],
        tuft_branches=2,
        tuft_orders=[(150.0, 2.0, 1.2), (250.0, 1.0, 0.5)],
        basal_orders=[(40.0, 2.0, 1.5), (180.0, 1.0, 0.5)],
        axon_diam_um=dm,
        main_axon_legs=legs,
        collaterals=collaterals,
    )
    return _pyramidal(p, rng)


def _l23_pc(variant: int) -> _Morphology:
    rng = np.random.default_rng(230 + variant)
    down = np.array([0.0, 0.0, -1.0])
    dm, dc, db = AXON_DIAMETERS_UM["L23_PC"]
    if variant == 0:
        legs = [(down, 1800.0)]
        collaterals = [
            (100.0, _branching(rng, [(_direction(95, 20), 200.0)], dc, db, [200.0, 120.0], db)),
            (250.0, _branching(rng, [(_direction(80, 200), 250.0)], dc, db, [200.0], db)),
            (950.0, _branching(rng, [(_direction(100, 110), 250.0)], dc, db, [200.0], db)),
            (1150.0, _branching(rng, [(_direction(90, 290), 300.0)], dc, db, [200.0], db)),
        ]
        p = dict(soma_um=20.0, trunk_um=350.0, trunk_diam_um=(3.5, 2.0), oblique_heights_um=[60, 130, 200, 260, 310], n_basal=6, tuft_branches=3)
    else:
        oblique = _direction(160, 45)  # 20 deg off the normal
        legs = [(oblique, 1400.0), (_direction(120, 45), 80.0), (_direction(95, 45), 500.0)]
        collaterals = [
            (150.0, _branching(rng, [(_direction(90, 250), 250.0)], dc, db, [200.0, 120.0], db)),
            (300.0, _branching(rng, [(_direction(70, 100), 200.0)], dc, db, [180.0], db)),
            (1000.0, _branching(rng, [(_direction(95, 330), 300.0)], dc, db, [200.0], db)),
        ]
        p = dict(soma_um=20.0, trunk_um=250.0, trunk_diam_um=(3.5, 2.0), oblique_heights_um=[60, 130, 190, 230], n_basal=5, tuft_branches=2)
    p.update(
        oblique_azimuth0_deg=80.0,
        oblique_orders=[(40.0, 1.0, 0.9), (120.0, 0.7, 0.4)],
        tuft_orders=[(150.0, 1.6, 1.0), (200.0, 0.8, 0.4)],
        basal_orders=[(30.0, 1.6, 1.2), (170.0, 0.9, 0.5)],
        axon_diam_um=dm,
        main_axon_legs=legs,
        collaterals=collaterals,
    )
    return _pyramidal(p, rng)


def _l4_lbc(variant: int) -> _Morphology:
    rng = np.random.default_rng(400 + variant)
    m = _Morphology()
    dm, dc, db = AXON_DIAMETERS_UM["L4_LBC"]
    soma_um = 18.0
    soma = _soma(m, soma_um)
    n_dend = 6 if variant == 0 else 5
    daughters = 180.0 if variant == 0 else 150.0
    for i in range(n_dend):
        direction = _direction(rng.uniform(30, 150), 360.0 * i / n_dend + rng.normal(0, 15))
        m.dendrite("basal", soma, 0.5, np.zeros(3), direction, [(30.0, 2.0, 1.2), (daughters, 1.0, 0.5)], rng, 40.0)
    up = np.array([0.0, 0.0, 1.0]) if variant == 0 else np.array([0.0, 0.0, -1.0])
    ais = _initial_segment(m, soma, soma_um, up, 5.0, 25.0, dm)
    rise = 150.0 if variant == 0 else 200.0
    stem_points = _polyline(m.end(ais), [(_tilt(up, 10, 0), rise)])
    nodes, last = m.myelinated(ais, 1.0, stem_points, dm, leaf=False, first_internode_um=FIRST_INTERNODE_UM)
    azimuths = [0, 90, 180, 270] if variant == 0 else [30, 150, 270]
    for k, azimuth in enumerate(azimuths):
        polar = 90 + (10 if variant == 0 else -15) + rng.normal(0, 8)  # horizontal arbour, slightly back to L4
        tree = _branching(rng, [(_direction(polar, azimuth), 250.0)], dc, db, [200.0, 150.0], db, angle_deg=40.0)
        m.collateral(last, m.end(last), tree)
    return m


_BUILDERS = {"L23_PC": _l23_pc, "L4_LBC": _l4_lbc, "L5_PC": _l5_pc}

# channel densities (S/cm2) per cell class; see the module docstring
_DENSITIES = {
    "pyramidal": dict(soma_na=1.0, soma_k=0.34, axon_na=3.9, axon_k=0.47, node_na=7.8, terminal_na=3.9, dend_cm=2.0),
    "basket": dict(soma_na=1.0, soma_k=0.68, axon_na=3.9, axon_k=0.94, node_na=7.8, terminal_na=3.9, dend_cm=1.0),
}


# ---------------------------------------------------------------------------------------------
# NEURON instantiation


class Cell:
    """A compartmental neuron instantiated in NEURON, soma at the origin, z towards the pia.

    Attributes
    ----------
    cell_type : str
        One of ``CELL_TYPES``.
    variant : int
        Morphological variant, ``0 <= variant < N_VARIANTS[cell_type]``.
    sections : list of nrn.Section
        All sections; ``section_kinds[i]`` is the kind of ``sections[i]`` (soma, basal, apical,
        hillock, ais, myelin, node, unmyelinated, terminal).
    n_segments : int
        Number of compartments. Every per-segment array (positions, E-field, quasipotential) has
        this many rows, in the order of ``segments()``.
    segment_kinds : ndarray of str, shape (n_segments,)
    segment_parent : ndarray of int, shape (n_segments,)
        Index of the neighbouring compartment towards the soma (-1 for the soma): the path along
        which quasipotentials are integrated.
    v_rest_mv : float
        Resting potential (an exact steady state by construction).
    """

    def __init__(self, cell_type: str, variant: int = 0):
        if cell_type not in CELL_TYPES:
            raise InputError(f"unknown cell type {cell_type!r}; expected one of {', '.join(CELL_TYPES)}.", field="cell_type")
        if not 0 <= int(variant) < N_VARIANTS[cell_type]:
            raise InputError(f"{cell_type} has variants 0..{N_VARIANTS[cell_type] - 1}; got {variant!r}.", field="variant")
        load_mechanisms()
        from neuron import h

        self.cell_type = cell_type
        self.variant = int(variant)
        self.v_rest_mv = V_REST_MV
        self._morphology = _BUILDERS[cell_type](self.variant)
        self._build(h)
        self._index_segments()
        self._set_rest(h)

    # --- construction -----------------------------------------------------------------------

    def _build(self, h) -> None:
        h.celsius = CELSIUS
        if h.nlayer_extracellular() != 1:
            # One extracellular layer suffices for a prescribed potential (xg, xraxial -> inf)
            # and halves the cost of every time step. Only possible before any instance exists.
            try:
                h.nlayer_extracellular(1)
            except RuntimeError:
                pass
        densities = _DENSITIES["basket" if self.cell_type == "L4_LBC" else "pyramidal"]
        self.sections, self.section_kinds = [], []
        for spec in self._morphology.sections:
            sec = h.Section(name=spec.name, cell=self)
            d0, d1 = spec.diameter_um
            s = _arc(spec.points_um)
            for point, arc in zip(spec.points_um, s):
                sec.pt3dadd(*point, d0 + (d1 - d0) * arc / s[-1] if s[-1] > 0 else d0)
            if spec.parent is not None:
                sec.connect(self.sections[spec.parent](spec.parent_x), 0)
            sec.nseg = max(1, 2 * int(math.ceil(s[-1] / _MAX_SEGMENT_UM[spec.kind]) // 2) + 1)  # odd
            sec.Ra = RA_OHM_CM
            self._biophysics(sec, spec.kind, densities)
            sec.insert("extracellular")
            sec.insert("xtra")
            self.sections.append(sec)
            self.section_kinds.append(spec.kind)

    @staticmethod
    def _biophysics(sec, kind: str, d: dict) -> None:
        sec.insert("pas")
        sec.g_pas = G_PAS_S_PER_CM2
        sec.e_pas = V_REST_MV
        sec.cm = 1.0
        if kind in ("basal", "apical"):
            sec.cm = d["dend_cm"]
        elif kind == "myelin":
            sec.cm = MYELIN_CM_UF_PER_CM2
            sec.g_pas = MYELIN_G_S_PER_CM2
        else:  # soma and excitable axon
            sec.insert("nat")
            sec.insert("kv31")
            sec.ena = E_NA_MV
            sec.ek = E_K_MV
            if kind == "soma":
                sec.gbar_nat, sec.gbar_kv31 = d["soma_na"], d["soma_k"]
                for seg in sec:  # somatic Na (NaTs2_t form): activation 6 mV more depolarised
                    seg.nat.mvhalf, seg.nat.hvhalf = -32.0, -60.0
            else:
                sec.gbar_nat = d["node_na"] if kind == "node" else d["terminal_na"] if kind == "terminal" else d["axon_na"]
                sec.gbar_kv31 = d["axon_k"]

    def _index_segments(self) -> None:
        from neuron import h

        positions, kinds, parents, owners, xs = [], [], [], [], []
        first_of, last_of = [], []
        for i, (sec, spec) in enumerate(zip(self.sections, self._morphology.sections)):
            pts, s = spec.points_um, _arc(spec.points_um)
            n = sec.nseg
            start = len(positions)
            for j in range(n):
                x = (j + 0.5) / n
                positions.append(_point_at(pts, s, x * s[-1]))
                kinds.append(spec.kind)
                owners.append(i)
                xs.append(x)
                if j > 0:
                    parents.append(start + j - 1)
                elif spec.parent is None:
                    parents.append(-1)
                else:
                    p = spec.parent
                    pn = self.sections[p].nseg
                    k = min(int(spec.parent_x * pn), pn - 1)  # compartment holding the connection
                    parents.append(first_of[p] + k)
            first_of.append(start)
            last_of.append(len(positions) - 1)
        self._positions_um = np.array(positions)
        self.segment_kinds = np.array(kinds)
        self.segment_parent = np.array(parents)
        self._segment_section = np.array(owners)
        self._segment_x = np.array(xs)
        self.n_segments = len(positions)
        # pointers: e_extracellular <- xtra, and a PtrVector over es_xtra to set them all at once
        self._es_pointers = h.PtrVector(self.n_segments)
        for k, seg in enumerate(self.segments()):
            h.setpointer(seg._ref_e_extracellular, "ex", seg.xtra)
            self._es_pointers.pset(k, seg._ref_es_xtra)
        # spike detectors on excitable compartments (used by core.tms.threshold)
        self._spike_times = h.Vector()
        self._spike_ids = h.Vector()
        self._detectors = []
        for k, seg in enumerate(self.segments()):
            if self.segment_kinds[k] in EXCITABLE_KINDS:
                nc = h.NetCon(seg._ref_v, None, sec=seg.sec)
                nc.threshold = 0.0
                nc.record(self._spike_times, self._spike_ids, k)
                self._detectors.append(nc)

    def _set_rest(self, h) -> None:
        """Choose each compartment's leak reversal so that V_REST_MV is a steady state."""
        h.stim_xtra = 0.0
        h.amp_xtra = 0.0
        h.finitialize(self.v_rest_mv)
        h.fcurrent()
        for sec in self.sections:
            for seg in sec:
                ionic = 0.0
                if hasattr(seg, "nat"):
                    ionic += seg.ina + seg.ik
                seg.pas.e = self.v_rest_mv + ionic / seg.pas.g
        h.finitialize(self.v_rest_mv)

    # --- queries ----------------------------------------------------------------------------

    def segments(self):
        """Iterate over all compartments (``nrn.Segment``), in the order of the per-segment arrays."""
        for sec in self.sections:
            yield from sec

    def segment_positions_um(self) -> np.ndarray:
        """Compartment centres in the cell frame (soma at the origin, z towards the pia).

        Returns
        -------
        ndarray, shape (n_segments, 3), um
        """
        return self._positions_um.copy()

    def sections_of(self, kind: str) -> list:
        """Sections of one kind, e.g. ``"node"`` or ``"terminal"``."""
        return [s for s, k in zip(self.sections, self.section_kinds) if k == kind]

    def counts(self) -> dict[str, int]:
        """Number of sections per kind."""
        out: dict[str, int] = {}
        for k in self.section_kinds:
            out[k] = out.get(k, 0) + 1
        return out

    def extent_um(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box of the compartment centres: (min xyz, max xyz) in um."""
        return self._positions_um.min(axis=0), self._positions_um.max(axis=0)

    def describe(self) -> str:
        lo, hi = self.extent_um()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))
        return f"{self.cell_type} v{self.variant}: {self.n_segments} compartments; {counts}; extent x {lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f}, z {lo[2]:.0f}..{hi[2]:.0f} um"

    def delete(self) -> None:
        """Remove this cell's sections from NEURON now (they stop being simulated)."""
        # drop everything that refers to the sections first, then the sections themselves
        self._detectors = []
        self._es_pointers = None
        self._spike_times = self._spike_ids = None
        self.sections = []

    def __str__(self) -> str:  # NEURON prefixes section names with this
        return f"{self.cell_type}_v{self.variant}"

    def __repr__(self) -> str:
        return f"Cell({self.cell_type!r}, variant={self.variant}, n_segments={getattr(self, 'n_segments', '?')})"


def build_cell(cell_type: str, variant: int = 0) -> Cell:
    """Build one cell in NEURON (mechanisms are compiled and loaded on first use).

    Parameters
    ----------
    cell_type : {"L23_PC", "L4_LBC", "L5_PC"}
    variant : int
        Morphological variant, 0 or 1.
    """
    return Cell(cell_type, variant)


_current: Cell | None = None


def get_cell(cell_type: str, variant: int = 0) -> Cell:
    """This process's one live cell, rebuilt only when the type or variant changes.

    NEURON simulates every section that exists, so loops over many cells (e.g. in joblib workers)
    should keep one at a time; the previous cell is deleted first.
    """
    global _current
    if _current is not None and _current.sections and (_current.cell_type, _current.variant) == (cell_type, int(variant)):
        return _current
    if _current is not None:
        _current.delete()
        _current = None
    _current = Cell(cell_type, variant)
    return _current


def release_cell() -> None:
    """Delete the cell that ``get_cell`` keeps, if any."""
    global _current
    if _current is not None:
        _current.delete()
        _current = None

COMMENT
Transient (fast-inactivating) sodium current, m^3 h.

Equations: Colbert CM & Pan E (2002) Ion channel properties underlying axonal action potential
initiation in pyramidal neurons. Nat Neurosci 5:533-538, in the Hodgkin-Huxley form used by
Hay E, Hill S, Schuermann F, Markram H, Segev I (2011) PLoS Comput Biol 7:e1002107 (mechanisms
NaTa_t, axonal, and NaTs2_t, somatic; ModelDB 139653), which Aberra AS, Peterchev AV, Grill WM
(2018) J Neural Eng 15:066023 use for the soma, axon initial segment, nodes of Ranvier and
unmyelinated axon of their cortical neuron models:

  x = v - mvhalf
  alpha_m = 0.182 x / (1 - exp(-x/6))        beta_m = -0.124 x / (1 - exp(x/6))       (1/ms)
  y = v - hvhalf
  alpha_h = -0.015 y / (1 - exp(y/6))        beta_h = 0.015 y / (1 - exp(-y/6))       (1/ms)
  m_inf = alpha_m/(alpha_m+beta_m),  tau_m = 1/(alpha_m+beta_m)/qt   (same for h)
  qt = q10^((celsius - 21)/10), q10 = 2.3 (rates measured at 21 degC, as in Hay 2011)

Half-activation voltages: axonal form (NaTa_t) mvhalf = -38 mV, hvhalf = -66 mV; somatic form
(NaTs2_t) mvhalf = -32 mV, hvhalf = -60 mV. Written for NeuroPredict from the published equations.
ENDCOMMENT

NEURON {
    SUFFIX nat
    USEION na READ ena WRITE ina
    RANGE gbar, g, mvhalf, hvhalf
    GLOBAL q10
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.0 (S/cm2)
    mvhalf = -38 (mV)
    hvhalf = -66 (mV)
    q10 = 2.3 (1)
}

ASSIGNED {
    v (mV)
    ena (mV)
    celsius (degC)
    ina (mA/cm2)
    g (S/cm2)
    minf (1)
    hinf (1)
    mtau (ms)
    htau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m*m*m*h
    ina = g*(v - ena)
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m)/mtau
    h' = (hinf - h)/htau
}

INITIAL {
    rates(v)
    m = minf
    h = hinf
}

PROCEDURE rates(v (mV)) {
    LOCAL am, bm, ah, bh, qt
    qt = q10^((celsius - 21 (degC))/10 (degC))
    am = 0.182*efun(v - mvhalf)
    bm = 0.124*efun(mvhalf - v)
    ah = 0.015*efun(hvhalf - v)
    bh = 0.015*efun(v - hvhalf)
    minf = am/(am + bm)
    mtau = 1/(am + bm)/qt
    hinf = ah/(ah + bh)
    htau = 1/(ah + bh)/qt
}

FUNCTION efun(x (mV)) (mV) {
    : x / (1 - exp(-x/6)), with its limit 6 mV at x = 0
    if (fabs(x) < 1e-6) {
        efun = 6 + x/2
    } else {
        efun = x/(1 - exp(-x/6))
    }
}

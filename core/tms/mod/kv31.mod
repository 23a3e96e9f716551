COMMENT
Fast delayed-rectifier potassium current of Kv3.1 channels, first order (m).

Equations: Rettig J, Wunder F, Stocker M, et al. (1992) Characterization of a Shaw-related
potassium channel family in rat brain. EMBO J 11:2473-2486, in the form fitted by
Hay E, Hill S, Schuermann F, Markram H, Segev I (2011) PLoS Comput Biol 7:e1002107 (mechanism
SKv3_1, ModelDB 139653) and used by Aberra AS, Peterchev AV, Grill WM (2018) J Neural Eng
15:066023 in soma, axon initial segment, nodes of Ranvier and unmyelinated axon:

  m_inf = 1 / (1 + exp(-(v - 18.7)/9.7))
  tau_m = 4 / (1 + exp(-(v + 46.56)/44.14)) / qt      (ms)
  qt = q10^((celsius - 34)/10), q10 = 2.3

Hay et al. fitted these kinetics for simulations at 34 degC and give no temperature factor; here
they are referred to 34 degC and scaled to other temperatures with the Q10 of 2.3 that Hay et al.
use for their other channels (a factor 1.28 faster at 37 degC). Written for NeuroPredict from the
published equations.
ENDCOMMENT

NEURON {
    SUFFIX kv31
    USEION k READ ek WRITE ik
    RANGE gbar, g
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
    q10 = 2.3 (1)
}

ASSIGNED {
    v (mV)
    ek (mV)
    celsius (degC)
    ik (mA/cm2)
    g (S/cm2)
    minf (1)
    mtau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m
    ik = g*(v - ek)
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m)/mtau
}

INITIAL {
    rates(v)
    m = minf
}

PROCEDURE rates(v (mV)) {
    LOCAL qt
    qt = q10^((celsius - 34 (degC))/10 (degC))
    minf = 1/(1 + exp(-(v - 18.7 (mV))/9.7 (mV)))
    mtau = 4 (ms)/(1 + exp(-(v + 46.56 (mV))/44.14 (mV)))/qt
}

COMMENT
Couples a quasipotential to the extracellular mechanism (e_extracellular), the way
Carnevale's xtra.mod does for extracellular stimulation (ModelDB 114685; the scheme Aberra et
al. 2018/2020 use for TMS): at every time step

  ex = amp * stim * es

es   quasipotential of this segment for a field of 1 (V/m per A/us) x 1 A/us, in mV
     (phi = -integral of E . dl from the soma), set once per field distribution;
stim TMS waveform, normalised so its peak |dI/dt| is 1 (unitless), played from a Vector;
amp  peak coil dI/dt of the pulse, in A/us, set per simulation.

ex is a POINTER to this segment's e_extracellular. Written for NeuroPredict.
ENDCOMMENT

NEURON {
    SUFFIX xtra
    RANGE es
    GLOBAL stim, amp
    POINTER ex
}

PARAMETER {
    es = 0 (mV)
}

ASSIGNED {
    ex (mV)
    stim (1)
    amp (1)
}

INITIAL {
    ex = amp*stim*es
}

BEFORE BREAKPOINT {
    ex = amp*stim*es
}

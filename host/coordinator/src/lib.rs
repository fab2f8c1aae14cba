//! Coordinators as sans-IO state machines: events in (with the time), actions out.

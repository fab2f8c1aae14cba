//! Topics, partitions and policies: wires storage and plugins together.

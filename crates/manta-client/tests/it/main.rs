//! Integration tests of the real `manta` binary: what a shell user sees when standard
//! output is a closed pipe.

mod pipes;

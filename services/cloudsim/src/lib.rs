//! The local cloud simulator: under construction.

//! Volumes: a sans-I/O core plus a blocking `std::fs` backend.

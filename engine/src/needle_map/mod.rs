//! Key -> (offset, size) index of a volume, built for billions of needles.

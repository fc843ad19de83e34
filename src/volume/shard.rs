//! Which core owns which volume. Share-nothing: a volume lives on exactly one core for the
//! life of the process, every request for it is served there.

/// The core that owns volume `volume_id` among `core_count` cores. A pure function of the id,
/// so every core computes the same owner without shared state, and a volume created later
/// lands on the same core as one opened at start.
pub fn owner_core(volume_id: u32, core_count: usize) -> usize {
    assert!(core_count > 0);
    (volume_id as usize) % core_count
}

/// The per-core port of core `core_index`: `--port` + 1 + index.
pub fn core_port(main_port: u16, core_index: usize) -> u16 {
    let port = main_port as usize + 1 + core_index;
    assert!(port <= u16::MAX as usize, "core port past 65535");
    port as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves volumes spread over all cores and each one has exactly one owner in range.
    #[test]
    fn owners_cover_all_cores() {
        let cores = 3;
        let owners: Vec<usize> = (1..=9).map(|vid| owner_core(vid, cores)).collect();
        assert!(owners.iter().all(|&core| core < cores));
        for core in 0..cores {
            assert_eq!(owners.iter().filter(|&&owner| owner == core).count(), 3);
        }
        assert_eq!(owner_core(7, 1), 0);
    }

    // Proves per-core ports follow the main port.
    #[test]
    fn core_ports() {
        assert_eq!(core_port(8080, 0), 8081);
        assert_eq!(core_port(8080, 3), 8084);
    }
}

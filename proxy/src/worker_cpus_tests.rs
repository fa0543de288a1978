use super::*;

#[test]
fn the_setting_is_auto_off_or_a_list_of_cpus() {
    assert_eq!(WorkerCpus::parse("auto"), Ok(WorkerCpus::Auto));
    assert_eq!(WorkerCpus::parse(" OFF "), Ok(WorkerCpus::Off));
    assert_eq!(WorkerCpus::parse("2, 3"), Ok(WorkerCpus::List(vec![2, 3])));
    for bad in ["", "yes", "1,", "0,-1", "1024", "0-3"] {
        let error = WorkerCpus::parse(bad).expect_err(bad);
        assert!(error.contains("auto, off or a list"), "{bad}: {error}");
    }
}

#[test]
fn auto_gives_each_worker_a_cpu_of_its_own_from_the_one_the_proxy_started_on() {
    let placed = plan(&WorkerCpus::Auto, &[0, 1], 2, Some(1)).unwrap();
    assert_eq!((placed.cpu_of(0), placed.cpu_of(1)), (Some(1), Some(0)));
    assert_eq!(placed.unpinned_because(), None);

    // A cpuset of 4, 6, 9 (a container's, or taskset's): started on 6.
    let placed = plan(&WorkerCpus::Auto, &[4, 6, 9], 3, Some(6)).unwrap();
    let cpus: Vec<_> = (0..3).map(|i| placed.cpu_of(i)).collect();
    assert_eq!(cpus, [Some(6), Some(9), Some(4)]);

    // Started on a CPU outside the set (the mask changed since): from its first.
    let placed = plan(&WorkerCpus::Auto, &[4, 6], 1, Some(0)).unwrap();
    assert_eq!(placed.cpu_of(0), Some(4));
    assert_eq!(placed.cpu_of(1), None);
}

#[test]
fn auto_pins_nothing_on_one_cpu_or_with_more_workers_than_cpus() {
    for (allowed, workers) in [(&[3][..], 1), (&[0, 1][..], 3)] {
        let placed = plan(&WorkerCpus::Auto, allowed, workers, Some(allowed[0])).unwrap();
        assert_eq!(placed.cpu_of(0), None, "{allowed:?} {workers}");
        assert!(placed.unpinned_because().is_some());
    }
}

#[test]
fn off_pins_nothing() {
    let placed = plan(&WorkerCpus::Off, &[0, 1, 2, 3], 2, Some(0)).unwrap();
    assert_eq!(placed.cpu_of(0), None);
    assert_eq!(placed.unpinned_because(), Some("worker-cpus = off"));
}

#[test]
fn a_list_is_used_in_turn_and_must_name_cpus_the_process_may_use() {
    let placed = plan(&WorkerCpus::List(vec![3, 1]), &[0, 1, 2, 3], 3, Some(0)).unwrap();
    let cpus: Vec<_> = (0..3).map(|i| placed.cpu_of(i)).collect();
    assert_eq!(cpus, [Some(3), Some(1), Some(3)]);

    let error = plan(&WorkerCpus::List(vec![1, 5]), &[0, 1, 2], 2, None).unwrap_err();
    assert_eq!(error, "CPU 5 is not one this process may run on (0,1,2)");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_thread_pinned_runs_on_its_cpu_only() {
    let allowed = os::cpus_of(0).unwrap();
    let cpu = *allowed.last().unwrap();
    let seen = std::thread::spawn(move || {
        pin_thread(0, cpu).unwrap();
        (os::cpus_of(0).unwrap(), os::current_cpu())
    })
    .join()
    .unwrap();
    assert_eq!(seen, (vec![cpu], Some(cpu)));
    // The other threads keep their mask.
    assert_eq!(os::cpus_of(0).unwrap(), allowed);
    assert!(pin_thread(0, MAX_CPU + 1).is_err());
}

#[test]
fn auto_pins_only_while_the_load_is_light_and_a_list_always() {
    let auto = plan(&WorkerCpus::Auto, &[0, 1], 2, Some(0)).unwrap();
    assert!(auto.follows_load());
    assert_eq!(
        (auto.cpu_under(1, true), auto.cpu_under(1, false)),
        (Some(1), None)
    );
    assert_eq!(auto.allowed(), [0, 1]);

    let listed = plan(&WorkerCpus::List(vec![1]), &[0, 1], 2, Some(0)).unwrap();
    assert!(!listed.follows_load());
    assert_eq!(listed.cpu_under(0, false), Some(1));

    let unpinned = plan(&WorkerCpus::Auto, &[0], 1, Some(0)).unwrap();
    assert!(
        !unpinned.follows_load(),
        "nothing pinned, nothing to let go"
    );
}

use super::*;
use crate::call::news::CallOutcome;
use crate::features::ConferenceHangup;

fn phone(plan: &str) -> Phone {
    Phone::new(DialPlan::parse(plan).expect("plan"), Duration::from_secs(5))
}

fn phone_with(features: Features) -> Phone {
    Phone::with_features(
        DialPlan::parse("xxxx").expect("plan"),
        Duration::from_secs(5),
        features,
    )
}

fn actions(phone: &mut Phone) -> Vec<Action> {
    std::iter::from_fn(|| phone.poll_action()).collect()
}

fn caller(number: &str) -> Caller {
    Caller {
        party: Party {
            number: number.into(),
            name: None,
        },
        ..Caller::default()
    }
}

fn dial(p: &mut Phone, now: Instant, keys: &str) {
    keys.chars().for_each(|k| p.digit(now, k));
}

fn placed(actions: &[Action]) -> Option<(CallId, String, bool)> {
    actions.iter().find_map(|a| match a {
        Action::PlaceCall {
            call,
            number,
            anonymous,
            ..
        } => Some((*call, number.clone(), *anonymous)),
        _ => None,
    })
}

fn state_of(p: &Phone, id: CallId) -> Option<CallState> {
    p.calls().iter().find(|c| c.id == id).map(|c| c.state)
}

/// A line talking to an answered incoming call; returns the call's id.
fn talking(p: &mut Phone, now: Instant) -> CallId {
    let (id, disposition) = p.incoming_call(now, caller("9000"));
    assert_eq!(disposition, Disposition::Ring);
    p.off_hook(now);
    p.call_connected(id, "PCMU/8000".into());
    actions(p);
    id
}

#[test]
fn off_hook_gives_dial_tone_and_the_first_digit_stops_it() {
    let now = Instant::now();
    let mut p = phone("");
    p.off_hook(now);
    assert_eq!(actions(&mut p), [Action::Tone(Some(Tone::Dial))]);
    p.digit(now, '9');
    assert_eq!(actions(&mut p), [Action::Tone(None)]);
    assert_eq!(p.state(), LineState::Dialing);
}

#[test]
fn hash_sends_the_number_at_once() {
    let now = Instant::now();
    let mut p = phone("");
    p.off_hook(now);
    dial(&mut p, now, "9000#");
    assert_eq!(placed(&actions(&mut p)), Some((1, "9000".into(), false)));
    assert_eq!(p.state(), LineState::Calling);
}

#[test]
fn the_interdigit_timeout_sends_a_number_the_plan_accepts() {
    let start = Instant::now();
    let mut p = phone("");
    p.off_hook(start);
    dial(&mut p, start, "12");
    actions(&mut p);
    p.handle_timeout(start + Duration::from_secs(4));
    assert!(
        actions(&mut p).is_empty(),
        "not before 5 s after the last digit"
    );
    p.handle_timeout(start + Duration::from_secs(5));
    assert_eq!(placed(&actions(&mut p)), Some((1, "12".into(), false)));
}

#[test]
fn a_complete_extension_dials_without_waiting() {
    let now = Instant::now();
    let mut p = phone("(xxxx|9xxxxxxx.)");
    p.off_hook(now);
    dial(&mut p, now, "1000");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.1), Some("1000".into()));
}

#[test]
fn an_impossible_number_gets_reorder() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    p.digit(now, '5');
    p.digit(now, 'A');
    assert_eq!(p.state(), LineState::Reorder);
    assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Reorder))));
}

#[test]
fn early_media_silences_the_local_ringback_until_the_answer() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "9000");
    p.call_ringing(1);
    assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Ringback))));
    p.call_early_media(1, "PCMU/8000".into());
    assert_eq!(p.state(), LineState::Ringback);
    assert!(actions(&mut p).contains(&Action::Tone(None)));
    assert_eq!(p.audio_route(), AudioRoute::Call(1));
    p.call_connected(1, "PCMU/8000".into());
    assert_eq!(p.state(), LineState::Connected);
}

#[test]
fn ringback_then_busy_then_idle_on_hook_with_no_call_left() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "9000");
    p.call_ringing(1);
    assert_eq!(p.state(), LineState::Ringback);
    p.call_ended(1, CallOutcome::Failed(486));
    assert_eq!(p.state(), LineState::Busy);
    assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Busy))));
    p.call_gone(1);
    p.on_hook(now);
    assert_eq!(p.state(), LineState::Idle);
    assert!(!actions(&mut p).contains(&Action::HangUp(1)));
    assert!(p.calls().is_empty(), "no ended call is left to show");
}

#[test]
fn other_failures_get_reorder_and_far_end_hang_up_waits_for_on_hook() {
    let now = Instant::now();
    let mut p = phone("");
    p.off_hook(now);
    dial(&mut p, now, "1#");
    p.call_ended(1, CallOutcome::Failed(404));
    assert_eq!(p.state(), LineState::Reorder);

    let mut p = phone("");
    p.off_hook(now);
    dial(&mut p, now, "1#");
    p.call_connected(1, "PCMU/8000".into());
    p.call_ended(1, CallOutcome::RemoteHangup);
    assert_eq!(p.state(), LineState::Disconnected);
    p.on_hook(now);
    assert_eq!(p.state(), LineState::Idle);
}

#[test]
fn an_incoming_call_rings_an_idle_line_and_off_hook_answers_it() {
    let now = Instant::now();
    let mut p = phone("");
    let (id, disposition) = p.incoming_call(now, caller("9000"));
    assert_eq!(disposition, Disposition::Ring);
    assert!(actions(&mut p).contains(&Action::Ringer(true)));
    p.off_hook(now);
    let done = actions(&mut p);
    assert!(done.contains(&Action::Ringer(false)));
    assert!(done.contains(&Action::Answer(id)));
    assert_eq!(p.state(), LineState::Connected);
    p.digit(now, '5');
    assert_eq!(actions(&mut p), [Action::SendDigit(id, '5')]);
    p.on_hook(now);
    assert!(actions(&mut p).contains(&Action::HangUp(id)));
    assert_eq!(p.last_caller().map(|c| c.number.as_str()), Some("9000"));
}

#[test]
fn an_off_hook_line_is_busy_for_incoming_calls() {
    let mut p = phone("");
    p.off_hook(Instant::now());
    assert_eq!(
        p.incoming_call(Instant::now(), caller("1")).1,
        Disposition::Reject(486)
    );
}

#[test]
fn call_waiting_plays_its_tone_and_flash_answers_then_swaps() {
    let now = Instant::now();
    let mut p = phone("");
    let first = talking(&mut p, now);
    let (second, disposition) = p.incoming_call(now, caller("7000"));
    assert_eq!(disposition, Disposition::Wait);
    assert_eq!(actions(&mut p), [Action::Tone(Some(Tone::CallWaiting))]);
    assert_eq!(state_of(&p, second), Some(CallState::Waiting));
    assert_eq!(p.audio_route(), AudioRoute::Call(first), "still talking");

    p.flash().expect("flash");
    let done = actions(&mut p);
    assert_eq!(
        done,
        [
            Action::Hold(first),
            Action::Answer(second),
            Action::Tone(None)
        ]
    );
    assert_eq!(p.audio_route(), AudioRoute::Call(second));
    assert_eq!(state_of(&p, first), Some(CallState::Held));

    p.flash().expect("swap");
    assert_eq!(
        actions(&mut p),
        [Action::Hold(second), Action::Resume(first)]
    );
    assert_eq!(p.audio_route(), AudioRoute::Call(first));
}

#[test]
fn a_waiting_caller_who_gives_up_stops_the_tone() {
    let now = Instant::now();
    let mut p = phone("");
    talking(&mut p, now);
    let (second, _) = p.incoming_call(now, caller("7000"));
    actions(&mut p);
    p.call_ended(second, CallOutcome::Cancelled);
    assert_eq!(actions(&mut p), [Action::Tone(None)]);
}

#[test]
fn hanging_up_with_a_call_on_hold_rings_the_line_again_and_off_hook_resumes_it() {
    let now = Instant::now();
    let mut p = phone("");
    let first = talking(&mut p, now);
    let (second, _) = p.incoming_call(now, caller("7000"));
    p.flash().expect("answer the waiting call");
    actions(&mut p);
    p.on_hook(now);
    let done = actions(&mut p);
    assert!(done.contains(&Action::HangUp(second)));
    assert!(done.contains(&Action::Ringer(true)), "recall: {done:?}");
    assert_eq!(p.state(), LineState::Ringing);
    p.off_hook(now);
    let done = actions(&mut p);
    assert!(done.contains(&Action::Resume(first)), "{done:?}");
    assert!(!done.contains(&Action::Answer(first)));
    assert_eq!(p.audio_route(), AudioRoute::Call(first));
}

#[test]
fn star_70_turns_call_waiting_off_for_the_next_call_and_config_for_all() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "*709000");
    let (id, ..) = placed(&actions(&mut p)).expect("placed");
    p.call_connected(id, "PCMU/8000".into());
    assert_eq!(
        p.incoming_call(now, caller("7000")).1,
        Disposition::Reject(486)
    );

    let mut p = phone_with(Features {
        call_waiting: false,
        ..Features::default()
    });
    talking(&mut p, now);
    assert_eq!(
        p.incoming_call(now, caller("7000")).1,
        Disposition::Reject(486)
    );
}

#[test]
fn flash_holds_for_a_consultation_call_a_second_flash_makes_a_conference_a_third_drops_it() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    let first = talking(&mut p, now);
    p.flash().expect("hold");
    assert_eq!(
        actions(&mut p),
        [Action::Hold(first), Action::Tone(Some(Tone::Dial))]
    );
    dial(&mut p, now, "7000");
    let (third, ..) = placed(&actions(&mut p)).expect("consultation call");
    p.call_connected(third, "PCMU/8000".into());
    assert_eq!(p.audio_route(), AudioRoute::Call(third));

    p.flash().expect("conference");
    assert_eq!(actions(&mut p), [Action::Resume(first)]);
    assert_eq!(p.audio_route(), AudioRoute::Conference(first, third));
    assert_eq!(state_of(&p, first), Some(CallState::Conference));

    p.flash().expect("drop the last party");
    assert_eq!(actions(&mut p), [Action::HangUp(third)]);
    assert_eq!(p.audio_route(), AudioRoute::Call(first));
}

#[test]
fn hanging_up_a_conference_ends_it_or_transfers_as_configured() {
    let now = Instant::now();
    for (hangup, expect_transfer) in [
        (ConferenceHangup::End, false),
        (ConferenceHangup::Transfer, true),
    ] {
        let mut p = phone_with(Features {
            conference_hangup: hangup,
            ..Features::default()
        });
        let first = talking(&mut p, now);
        p.flash().expect("hold");
        dial(&mut p, now, "7000");
        let third = placed(&actions(&mut p)).expect("placed").0;
        p.call_connected(third, "PCMU/8000".into());
        p.flash().expect("conference");
        actions(&mut p);
        p.on_hook(now);
        let done = actions(&mut p);
        let transfer = Action::AttendedTransfer {
            call: first,
            target: third,
        };
        assert_eq!(done.contains(&transfer), expect_transfer, "{done:?}");
        assert_eq!(done.contains(&Action::HangUp(first)), !expect_transfer);
        assert_eq!(p.state(), LineState::Idle, "no recall after a conference");
    }
}

#[test]
fn on_hook_after_a_consultation_call_answers_is_an_attended_transfer() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    let first = talking(&mut p, now);
    p.flash().expect("hold");
    dial(&mut p, now, "7000");
    let third = placed(&actions(&mut p)).expect("placed").0;
    p.call_connected(third, "PCMU/8000".into());
    p.on_hook(now);
    let done = actions(&mut p);
    assert!(done.contains(&Action::AttendedTransfer {
        call: first,
        target: third
    }));
    assert!(!done.contains(&Action::Ringer(true)), "no recall: {done:?}");
}

#[test]
fn flash_before_the_consultation_call_answers_drops_it_and_resumes_the_held_call() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    let first = talking(&mut p, now);
    p.flash().expect("hold");
    dial(&mut p, now, "7000");
    let third = placed(&actions(&mut p)).expect("placed").0;
    p.flash().expect("back");
    let done = actions(&mut p);
    assert!(done.contains(&Action::HangUp(third)));
    assert!(done.contains(&Action::Resume(first)));
}

#[test]
fn forward_all_redirects_before_ringing_and_stutters_the_dial_tone() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "#729000#");
    assert_eq!(p.features().forward.all.as_deref(), Some("9000"));
    assert_eq!(p.state(), LineState::DialTone);
    assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::StutterDial))));
    p.on_hook(now);
    assert_eq!(
        p.incoming_call(now, caller("7000")).1,
        Disposition::Forward {
            target: "9000".into(),
            reason: "unconditional"
        }
    );
    assert!(p.calls().is_empty());
    p.off_hook(now);
    dial(&mut p, now, "#73#");
    assert_eq!(p.features().forward.all, None);
    assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Dial))));
}

#[test]
fn forward_on_busy_and_on_no_answer_after_the_configured_time() {
    let start = Instant::now();
    let mut features = Features {
        call_waiting: false,
        ..Features::default()
    };
    features.forward.busy = Some("7000".into());
    features.forward.no_answer = Some("8000".into());
    features.no_answer_seconds = 20;
    let mut p = phone_with(features);
    let (first, disposition) = p.incoming_call(start, caller("9000"));
    assert_eq!(disposition, Disposition::Ring);
    assert_eq!(p.poll_timeout(), Some(start + Duration::from_secs(20)));
    p.handle_timeout(start + Duration::from_secs(19));
    assert!(!actions(&mut p)
        .iter()
        .any(|a| matches!(a, Action::Forward { .. })));
    p.handle_timeout(start + Duration::from_secs(20));
    let done = actions(&mut p);
    assert!(done.contains(&Action::Forward {
        call: first,
        target: "8000".into(),
        reason: "no-answer"
    }));
    assert!(done.contains(&Action::Ringer(false)));
    p.call_gone(first);

    talking(&mut p, start);
    assert_eq!(
        p.incoming_call(start, caller("6000")).1,
        Disposition::Forward {
            target: "7000".into(),
            reason: "user-busy"
        }
    );
}

#[test]
fn an_answered_call_is_not_forwarded_on_no_answer() {
    let start = Instant::now();
    let mut features = Features::default();
    features.forward.no_answer = Some("8000".into());
    let mut p = phone_with(features);
    let (id, _) = p.incoming_call(start, caller("9000"));
    p.off_hook(start + Duration::from_secs(3));
    actions(&mut p);
    assert_eq!(p.poll_timeout(), None);
    p.handle_timeout(start + Duration::from_secs(30));
    assert!(!actions(&mut p).contains(&Action::Forward {
        call: id,
        target: "8000".into(),
        reason: "no-answer"
    }));
}

#[test]
fn dnd_and_anonymous_rejection_refuse_before_ringing() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "*78");
    p.on_hook(now);
    assert_eq!(
        p.incoming_call(now, caller("9000")).1,
        Disposition::Reject(486)
    );
    p.off_hook(now);
    dial(&mut p, now, "*79");
    dial(&mut p, now, "*77");
    p.on_hook(now);
    let anonymous = Caller {
        anonymous: true,
        ..caller("anonymous")
    };
    assert_eq!(
        p.incoming_call(now, anonymous.clone()).1,
        Disposition::Reject(433)
    );
    assert_eq!(
        p.last_caller().map(|c| c.number.as_str()),
        Some("9000"),
        "an anonymous caller is not kept as the last caller"
    );
    p.off_hook(now);
    dial(&mut p, now, "*87");
    p.on_hook(now);
    assert_eq!(p.incoming_call(now, anonymous).1, Disposition::Ring);
}

#[test]
fn star_67_hides_the_next_call_only_and_star_82_shows_it_when_hiding_is_the_default() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.off_hook(now);
    dial(&mut p, now, "*679000");
    assert_eq!(placed(&actions(&mut p)), Some((1, "9000".into(), true)));
    p.on_hook(now);
    p.off_hook(now);
    dial(&mut p, now, "9000");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.2), Some(false));

    let mut p = phone_with(Features {
        caller_id_blocked: true,
        ..Features::default()
    });
    p.off_hook(now);
    dial(&mut p, now, "9000");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.2), Some(true));
    p.on_hook(now);
    p.off_hook(now);
    dial(&mut p, now, "*829000");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.2), Some(false));
}

#[test]
fn call_return_redial_and_speed_dial() {
    let now = Instant::now();
    let mut features = Features::default();
    features.speed_dial.insert('2', "9000".into());
    let mut p = phone_with(features);
    p.incoming_call(now, caller("7000"));
    p.off_hook(now);
    p.on_hook(now);
    p.off_hook(now);
    actions(&mut p);
    dial(&mut p, now, "*69");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.1), Some("7000".into()));
    p.on_hook(now);
    p.off_hook(now);
    dial(&mut p, now, "*66");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.1), Some("7000".into()));
    p.on_hook(now);
    p.off_hook(now);
    dial(&mut p, now, "2#");
    assert_eq!(placed(&actions(&mut p)).map(|c| c.1), Some("9000".into()));
}

#[test]
fn waiting_messages_stutter_the_dial_tone() {
    let now = Instant::now();
    let mut p = phone("xxxx");
    p.set_messages(MessageCounts { new: 2, old: 1 });
    p.off_hook(now);
    assert_eq!(actions(&mut p), [Action::Tone(Some(Tone::StutterDial))]);
    p.set_messages(MessageCounts { new: 0, old: 3 });
    assert_eq!(actions(&mut p), [Action::Tone(Some(Tone::Dial))]);
}

#[test]
fn distinctive_ring_is_reported_while_the_call_rings() {
    let now = Instant::now();
    let mut p = phone("");
    let (id, _) = p.incoming_call(
        now,
        Caller {
            ring_pattern: Some("Bellcore-dr2".into()),
            ..caller("9000")
        },
    );
    assert_eq!(p.ring_pattern(), Some("Bellcore-dr2"));
    p.off_hook(now);
    assert_eq!(p.ring_pattern(), None);
    assert_eq!(state_of(&p, id), Some(CallState::Connected));
}

#[test]
fn flash_goes_to_the_far_end_when_flash_mode_says_so() {
    let now = Instant::now();
    let mut p = phone_with(Features {
        flash_mode: crate::features::FlashMode::Rfc4733,
        ..Features::default()
    });
    let id = talking(&mut p, now);
    p.flash().expect("flash");
    assert_eq!(actions(&mut p), [Action::SendFlash(id)]);
    assert_eq!(p.audio_route(), AudioRoute::Call(id), "no local hold");
}

#[test]
fn an_invite_with_replaces_takes_the_place_of_a_talking_call() {
    let now = Instant::now();
    let mut p = phone("");
    let old = talking(&mut p, now);
    let new = p.replace_call(old, caller("7000")).expect("replaced");
    let done = actions(&mut p);
    assert_eq!(done, [Action::Answer(new), Action::HangUp(old)]);
    assert_eq!(p.audio_route(), AudioRoute::Call(new));
    assert_eq!(p.replace_call(99, caller("1")), None);
}

#[test]
fn a_referred_call_takes_the_handset() {
    let now = Instant::now();
    let mut p = phone("");
    let old = talking(&mut p, now);
    let new = p.referred(
        old,
        "sip:7000@lab".into(),
        Some("abc;to-tag=1;from-tag=2".into()),
    );
    let done = actions(&mut p);
    assert!(done.contains(&Action::PlaceCall {
        call: new,
        number: "sip:7000@lab".into(),
        anonymous: false,
        replaces: Some("abc;to-tag=1;from-tag=2".into()),
    }));
    let shown = p
        .calls()
        .iter()
        .find(|c| c.id == new)
        .map(|c| c.remote.number.clone());
    assert_eq!(shown.as_deref(), Some("7000"), "the URI's user part");
    p.call_connected(new, "PCMU/8000".into());
    assert_eq!(p.audio_route(), AudioRoute::Call(new));
    p.call_ended(old, CallOutcome::RemoteHangup);
    assert_eq!(
        p.state(),
        LineState::Connected,
        "the old call's end is not heard"
    );
}

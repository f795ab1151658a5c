// Diesel table definitions shared by the SQLite and PostgreSQL migrations
// (`diesel print-schema` output, with SQLite's INTEGER keys widened to BigInt so both
// backends agree).

diesel::table! {
    resources (resource_type, id) {
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> BigInt,
        deleted -> Bool,
    }
}

diesel::table! {
    resource_versions (seq) {
        seq -> BigInt,
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> BigInt,
        method -> Text,
        body -> Nullable<Text>,
    }
}

diesel::table! {
    search_token (resource_type, id, param, code) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        system -> Nullable<Text>,
        code -> Text,
    }
}

diesel::table! {
    search_string (resource_type, id, param, value_norm) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        value_norm -> Text,
        value_exact -> Text,
    }
}

diesel::table! {
    search_reference (resource_type, id, param) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        url -> Nullable<Text>,
        ident_system -> Nullable<Text>,
        ident_value -> Nullable<Text>,
    }
}

diesel::table! {
    search_date (resource_type, id, param, low) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        low -> BigInt,
        high -> BigInt,
    }
}

diesel::table! {
    search_snapshots (search_id) {
        search_id -> Text,
        resource_type -> Text,
        query -> Text,
        size -> BigInt,
        total -> Nullable<BigInt>,
        created -> BigInt,
        owner -> Nullable<Text>,
        as_of -> Nullable<BigInt>,
    }
}

diesel::table! {
    search_snapshot_entries (search_id, position) {
        search_id -> Text,
        position -> BigInt,
        id -> Text,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        recorded -> BigInt,
        request_id -> Text,
        actor -> Text,
        action -> Text,
        interaction -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        version_id -> Nullable<BigInt>,
        outcome -> Text,
        organization -> Nullable<Text>,
        patients -> Nullable<Text>,
        chain_pos -> Nullable<BigInt>,
        prev_hash -> Nullable<Text>,
        hash -> Nullable<Text>,
    }
}

diesel::table! {
    audit_event_patients (patient, seq) {
        patient -> Text,
        seq -> BigInt,
    }
}

diesel::table! {
    audit_chain (id) {
        id -> Integer,
        position -> BigInt,
        hash -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(audit_events, audit_event_patients);

diesel::allow_tables_to_appear_in_same_query!(
    resources,
    resource_versions,
    search_token,
    search_string,
    search_reference,
    search_date,
    search_snapshots,
    search_snapshot_entries,
);

diesel::table! {
    request_records (request_id) {
        request_id -> Text,
        fingerprint -> Text,
        reply -> Text,
        recorded -> BigInt,
    }
}

diesel::table! {
    postcodes (postcode) {
        postcode -> Text,
        municipality -> Text,
    }
}

diesel::table! {
    postcode_imports (imported) {
        imported -> BigInt,
        source -> Text,
        row_count -> BigInt,
    }
}

diesel::table! {
    change_clock (id) {
        id -> Integer,
        last_at -> BigInt,
    }
}

diesel::table! {
    audit_journal_batches (batch_id) {
        batch_id -> Text,
        moved -> BigInt,
    }
}

diesel::table! {
    subscription_state (id) {
        id -> Text,
        topic -> Text,
        resource_type -> Text,
        filter_query -> Text,
        status -> Text,
        events_since_start -> BigInt,
        delivered_through -> BigInt,
        next_attempt_at -> BigInt,
        attempts -> Integer,
        failing_since -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        heartbeat_period -> Nullable<BigInt>,
        last_sent_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        secret -> Nullable<Text>,
    }
}

diesel::table! {
    subscription_events (subscription_id, event_number) {
        subscription_id -> Text,
        event_number -> BigInt,
        at -> BigInt,
        focus_type -> Text,
        focus_id -> Text,
        focus_version -> BigInt,
    }
}

diesel::table! {
    access_grants (organization, resource_type, resource_id, anchor, relation) {
        organization -> Text,
        resource_type -> Text,
        resource_id -> Text,
        anchor -> Text,
        relation -> Text,
        valid_from -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    messages (source, message_id) {
        source -> Text,
        message_id -> Text,
        event -> Text,
        endpoint_id -> Text,
        request_bundle -> Text,
        response_bundle -> Text,
        service_request -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    auth_clients (client_id) {
        client_id -> Text,
        role -> Text,
        organization -> Text,
        scopes -> Text,
        jwks -> Nullable<Text>,
        secret_hash -> Nullable<Text>,
        created -> BigInt,
    }
}

diesel::table! {
    auth_tokens (token_hash) {
        token_hash -> Text,
        client_id -> Text,
        scopes -> Text,
        expires -> BigInt,
    }
}

diesel::table! {
    auth_jtis (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires -> BigInt,
    }
}

diesel::joinable!(auth_tokens -> auth_clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(auth_tokens, auth_clients);

diesel::table! {
    referral_facts (referral) {
        referral -> Text,
        referral_date -> Text,
        municipality -> Text,
        practice -> Nullable<Text>,
        age_group -> Nullable<Text>,
        organization -> Nullable<Text>,
        category -> Text,
        status -> Text,
        unroutable_reason -> Nullable<Text>,
        rejection_reason -> Nullable<Text>,
        flags -> BigInt,
        received_at -> BigInt,
        contact_at -> Nullable<BigInt>,
        intake_at -> Nullable<BigInt>,
        completed_at -> Nullable<BigInt>,
        health -> Nullable<Text>,
    }
}

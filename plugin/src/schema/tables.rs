//! The tables, each declared once with `table!`: its row struct and its columns in one place.

use super::{Column, ColumnType, Table};

table! {
    /// One row per callRecord version.
    CallRow<'a>, CALL = "TeamsCall_CL", "One row per callRecord version: who organized it, when, how big." {
        time_generated "TimeGenerated": datetime = "When the call started (UTC); lastModifiedDateTime when unknown.",
        call_id "CallId": string = "callRecord id.",
        call_version "CallVersion": long = "callRecord version; the highest version of a CallId is the complete one.",
        call_type "CallType": string = "groupCall, peerToPeer, unknown, or a newer value.",
        modalities "Modalities": dynamic = "Modalities used (audio, video, screenSharing, ...).",
        start_time "StartDateTime": datetime = "When the first participant joined.",
        end_time "EndDateTime": datetime = "When the last participant left.",
        duration_ms "DurationMs": long = "EndDateTime - StartDateTime in milliseconds.",
        last_modified "LastModifiedDateTime": datetime = "When this version of the record was written.",
        join_web_url "JoinWebUrl": string = "Meeting join URL (meetings only).",
        organizer_id "OrganizerId": string = "Organizer's identity id (organizer_v2; deprecated organizer as fallback).",
        organizer_display_name "OrganizerDisplayName": string = "Organizer's display name.",
        organizer_upn "OrganizerUserPrincipalName": string = "Organizer's user principal name, when Graph gives it.",
        organizer_tenant_id "OrganizerTenantId": string = "Organizer's tenant.",
        organizer_identity_type "OrganizerIdentityType": string = "Kind of organizer identity: user, phone, guest, application, ...",
        participant_count "ParticipantCount": long = "Distinct participants (participants_v2; deprecated participants as fallback); null when the record carries no participant list.",
        tenant_ids "TenantIds": dynamic = "Distinct tenant ids seen among participants and endpoints.",
        session_count "SessionCount": long = "Sessions in the record.",
        segment_count "SegmentCount": long = "Segments in all sessions.",
        stream_count "StreamCount": long = "Media streams in all segments.",
        failed_segment_count "FailedSegmentCount": long = "Segments that carry failureInfo.",
    }
}

table! {
    /// One row per session segment (a leg between a caller and a callee endpoint).
    LegRow<'a>, LEG = "TeamsCallLeg_CL", "One row per session segment: who called whom, from which tenant, client and IP." {
        time_generated "TimeGenerated": datetime = "When the segment started (UTC).",
        call_id "CallId": string = "callRecord id.",
        call_version "CallVersion": long = "callRecord version.",
        session_id "SessionId": string = "Session id.",
        segment_id "SegmentId": string = "Segment id (empty for a session without segments).",
        start_time "StartDateTime": datetime = "Segment start.",
        end_time "EndDateTime": datetime = "Segment end.",
        duration_ms "DurationMs": long = "Segment length in milliseconds.",
        modalities "Modalities": dynamic = "Modalities of the session.",
        is_test "IsTest": boolean = "The session was a test call.",
        failure_stage "FailureStage": string = "failureInfo.stage of the segment (or session): callSetup, midcall, ...",
        failure_reason "FailureReason": string = "failureInfo.reason.",
        caller_endpoint_type "CallerEndpointType": string = "participant, service, or the @odata.type when unknown.",
        caller_identity_type "CallerIdentityType": string = "user, guest, phone, application, acsUser, ... (associatedIdentity first).",
        caller_id "CallerId": string = "Caller identity id (for phone identities, the number).",
        caller_display_name "CallerDisplayName": string = "Caller display name.",
        caller_upn "CallerUserPrincipalName": string = "Caller user principal name, when Graph gives it.",
        caller_tenant_id "CallerTenantId": string = "Caller tenant.",
        caller_platform "CallerPlatform": string = "Client platform (windows, android, ...).",
        caller_product_family "CallerProductFamily": string = "Client product family (teams, skypeForBusiness, ...).",
        caller_user_agent "CallerUserAgent": string = "User-Agent header value.",
        caller_app_version "CallerApplicationVersion": string = "Client or service application version.",
        caller_service_role "CallerServiceRole": string = "Role of a service endpoint (conferencing, mediationServer, ...).",
        caller_device_name "CallerDeviceName": string = "Device name reported by a participant endpoint.",
        caller_ip "CallerIpAddress": string = "Caller local IP address (first media entry that has one).",
        caller_reflexive_ip "CallerReflexiveIpAddress": string = "Caller public IP as seen by the relay.",
        caller_relay_ip "CallerRelayIpAddress": string = "Media relay IP allocated by the caller.",
        caller_subnet "CallerSubnet": string = "Caller subnet.",
        caller_port "CallerPort": long = "Caller media port.",
        caller_connection_type "CallerConnectionType": string = "wired, wifi, mobile, tunnel, ...",
        callee_endpoint_type "CalleeEndpointType": string = "participant, service, or the @odata.type when unknown.",
        callee_identity_type "CalleeIdentityType": string = "user, guest, phone, application, acsUser, ... (associatedIdentity first).",
        callee_id "CalleeId": string = "Callee identity id (for phone identities, the number).",
        callee_display_name "CalleeDisplayName": string = "Callee display name.",
        callee_upn "CalleeUserPrincipalName": string = "Callee user principal name, when Graph gives it.",
        callee_tenant_id "CalleeTenantId": string = "Callee tenant.",
        callee_platform "CalleePlatform": string = "Client platform.",
        callee_product_family "CalleeProductFamily": string = "Client product family.",
        callee_user_agent "CalleeUserAgent": string = "User-Agent header value.",
        callee_app_version "CalleeApplicationVersion": string = "Client or service application version.",
        callee_service_role "CalleeServiceRole": string = "Role of a service endpoint.",
        callee_device_name "CalleeDeviceName": string = "Device name reported by a participant endpoint.",
        callee_ip "CalleeIpAddress": string = "Callee local IP address.",
        callee_reflexive_ip "CalleeReflexiveIpAddress": string = "Callee public IP as seen by the relay.",
        callee_relay_ip "CalleeRelayIpAddress": string = "Media relay IP allocated by the callee.",
        callee_subnet "CalleeSubnet": string = "Callee subnet.",
        callee_port "CalleePort": long = "Callee media port.",
        callee_connection_type "CalleeConnectionType": string = "wired, wifi, mobile, tunnel, ...",
    }
}

table! {
    /// One row per media stream.
    StreamRow<'a>, STREAM = "TeamsCallStream_CL", "One row per media stream: codec and network quality." {
        time_generated "TimeGenerated": datetime = "When the stream (or its segment) started (UTC).",
        call_id "CallId": string = "callRecord id.",
        call_version "CallVersion": long = "callRecord version.",
        session_id "SessionId": string = "Session id.",
        segment_id "SegmentId": string = "Segment id.",
        media_label "MediaLabel": string = "main-audio, main-video, applicationsharing-video, ...",
        stream_id "StreamId": string = "Stream id.",
        stream_direction "StreamDirection": string = "callerToCallee or calleeToCaller.",
        audio_codec "AudioCodec": string = "Audio codec.",
        video_codec "VideoCodec": string = "Video codec.",
        start_time "StartDateTime": datetime = "Stream start.",
        end_time "EndDateTime": datetime = "Stream end.",
        avg_jitter "AverageJitterMs": real = "Average jitter (ms).",
        max_jitter "MaxJitterMs": real = "Maximum jitter (ms).",
        avg_audio_jitter "AverageAudioNetworkJitterMs": real = "Average audio network jitter (ms).",
        max_audio_jitter "MaxAudioNetworkJitterMs": real = "Maximum audio network jitter (ms).",
        avg_rtt "AverageRoundTripTimeMs": real = "Average round-trip time (ms).",
        max_rtt "MaxRoundTripTimeMs": real = "Maximum round-trip time (ms).",
        avg_loss "AveragePacketLossRate": real = "Average packet loss rate.",
        max_loss "MaxPacketLossRate": real = "Maximum packet loss rate.",
        avg_degradation "AverageAudioDegradation": real = "Average network MOS degradation.",
        avg_bandwidth "AverageBandwidthEstimate": long = "Average bandwidth estimate (bit/s).",
        packets "PacketUtilization": long = "Packets in the stream.",
        avg_concealed "AverageRatioOfConcealedSamples": real = "Average ratio of concealed audio samples.",
        max_concealed "MaxRatioOfConcealedSamples": real = "Maximum ratio of concealed audio samples.",
        avg_frame_rate "AverageVideoFrameRate": real = "Average video frame rate.",
        avg_received_frame_rate "AverageReceivedFrameRate": real = "Average received frame rate.",
        avg_frame_loss "AverageVideoFrameLossPercentage": real = "Average video frame loss (%).",
        avg_video_loss "AverageVideoPacketLossRate": real = "Average video packet loss rate.",
        avg_freeze "AverageFreezeDurationMs": real = "Average video freeze (ms).",
        rms_freeze "RmsFreezeDurationMs": real = "RMS video freeze (ms).",
        low_frame_rate "LowFrameRateRatio": real = "Share of the call under 7.5 fps.",
        low_processing "LowVideoProcessingCapabilityRatio": real = "Share of the call with low video processing capability.",
        post_fec_loss "PostForwardErrorCorrectionPacketLossRate": real = "Packet loss after FEC.",
        fec_used "IsAudioForwardErrorCorrectionUsed": boolean = "FEC was used.",
        media_bypassed "WasMediaBypassed": boolean = "Media bypassed the mediation server (direct routing).",
        caller_ip "CallerIpAddress": string = "Caller local IP of this media.",
        caller_reflexive_ip "CallerReflexiveIpAddress": string = "Caller public IP of this media.",
        caller_connection_type "CallerConnectionType": string = "Caller connection type.",
        callee_ip "CalleeIpAddress": string = "Callee local IP of this media.",
        callee_reflexive_ip "CalleeReflexiveIpAddress": string = "Callee public IP of this media.",
        callee_connection_type "CalleeConnectionType": string = "Callee connection type.",
    }
}

table! {
    /// One row per participant (and one for the organizer).
    ParticipantRow<'a>, PARTICIPANT = "TeamsCallParticipant_CL", "One row per distinct participant, plus one for the organizer." {
        time_generated "TimeGenerated": datetime = "When the call started (UTC).",
        call_id "CallId": string = "callRecord id.",
        call_version "CallVersion": long = "callRecord version.",
        role "Role": string = "organizer or participant.",
        participant_id "ParticipantId": string = "participants_v2 / organizer_v2 id (the identity id for deprecated data).",
        identity_type "IdentityType": string = "user, guest, phone, application, acsUser, spoolUser, ...",
        user_id "UserId": string = "Identity id (for phone identities, the number).",
        display_name "DisplayName": string = "Display name.",
        upn "UserPrincipalName": string = "User principal name, when Graph gives it.",
        participant_tenant_id "ParticipantTenantId": string = "Tenant of the identity.",
        endpoint_type "EndpointType": string = "communicationsIdentitySet.endpointType (default, voicemail, ...).",
        source "Source": string = "participants_v2 / organizer_v2, or the deprecated participants / organizer.",
    }
}

table! {
    /// One row per PSTN call log entry (Graph `getPstnCalls`: Calling Plans and Operator Connect).
    PstnCallRow<'a>, PSTN_CALL = "TeamsPstnCall_CL", "One row per PSTN call (Graph getPstnCalls, pstnCallLogRow): who dialled which number, for how long, at what charge." {
        time_generated "TimeGenerated": datetime = "When the call started (UTC).",
        id "Id": string = "pstnCallLogRow id: unique per row, the key rows are deduplicated by.",
        call_id "CallId": string = "Call identifier (not guaranteed unique; not a callRecord id).",
        conference_id "ConferenceId": string = "Audio conference id, for conference calls.",
        user_id "UserId": string = "Calling user's Entra object id (empty for bot call types ucap_in, ucap_out).",
        upn "UserPrincipalName": string = "User principal name of the user.",
        user_display_name "UserDisplayName": string = "Display name of the user.",
        start_time "StartDateTime": datetime = "Call start.",
        end_time "EndDateTime": datetime = "Call end.",
        duration_seconds "DurationSeconds": long = "How long the call was connected, in seconds.",
        call_type "CallType": string = "Call type and direction as Graph names it (user_in, user_out, conf_out, emergency_out, ucap_in, ...).",
        direction "Direction": string = "inbound or outbound, from CallType's _in / _out suffix; empty when it has neither.",
        caller_number "CallerNumber": string = "Number of the calling party (E.164).",
        callee_number "CalleeNumber": string = "Number dialled (E.164).",
        charge "Charge": real = "Amount charged for the call, in Currency (Graph's decimal; 0 when included in a plan).",
        connection_charge "ConnectionCharge": real = "Connection fee, in Currency.",
        currency "Currency": string = "ISO 4217 currency of Charge and ConnectionCharge.",
        destination_context "DestinationContext": string = "Domestic or International, from the user's location.",
        destination_name "DestinationName": string = "Country or region dialled.",
        usage_country_code "UsageCountryCode": string = "ISO 3166-1 alpha-2 country of the user.",
        tenant_country_code "TenantCountryCode": string = "ISO 3166-1 alpha-2 country of the tenant.",
        license_capability "LicenseCapability": string = "License used for the call (MCOPSTNU, MCOPSTN1, ...).",
        inventory_type "InventoryType": string = "User's number type (Subscriber, Service, toll-free, ...).",
        operator "Operator": string = "Telecommunications operator: Microsoft, or an Operator Connect operator.",
        call_duration_source "CallDurationSource": string = "Who measured the duration: microsoft or operator.",
    }
}

table! {
    /// One row per Direct Routing call log entry (Graph `getDirectRoutingCalls`).
    DirectRoutingCallRow<'a>, DIRECT_ROUTING_CALL = "TeamsDirectRoutingCall_CL", "One row per Direct Routing call attempt (Graph getDirectRoutingCalls, directRoutingLogRow): trunk, numbers, SIP outcome." {
        time_generated "TimeGenerated": datetime = "When the call started (UTC); for failed calls this can be the invite or failure time.",
        id "Id": string = "directRoutingLogRow id: unique per row, the key rows are deduplicated by.",
        correlation_id "CorrelationId": string = "Identifier to give Microsoft Support.",
        user_id "UserId": string = "Calling user's Entra object id (empty for bot call types).",
        upn "UserPrincipalName": string = "User principal name of the user.",
        user_display_name "UserDisplayName": string = "Display name of the user.",
        start_time "StartDateTime": datetime = "Call start.",
        invite_time "InviteDateTime": datetime = "When the initial INVITE was sent.",
        failure_time "FailureDateTime": datetime = "When a failed call failed; null for established calls (Graph sends 0001-01-01).",
        end_time "EndDateTime": datetime = "When an established call ended; null for failed calls.",
        duration_seconds "DurationSeconds": long = "Duration of the call in seconds.",
        call_type "CallType": string = "Call type and direction as Graph names it (ByotIn, ByotOut, ByotOutUserForwarding, ...).",
        direction "Direction": string = "inbound or outbound, from CallType (ByotIn... / ByotOut...); empty otherwise.",
        successful_call "SuccessfulCall": boolean = "The call was established (else it was an attempt).",
        caller_number "CallerNumber": string = "Number of the calling party (E.164, may carry other data).",
        callee_number "CalleeNumber": string = "Number of the called party (E.164, may carry other data).",
        media_path_location "MediaPathLocation": string = "Datacenter of the media path (non-bypass calls).",
        signaling_location "SignalingLocation": string = "Datacenter used for signalling.",
        final_sip_code "FinalSipCode": long = "Final SIP response code (RFC 3261).",
        call_end_sub_reason "CallEndSubReason": long = "Microsoft's subcode for the outcome.",
        final_sip_code_phrase "FinalSipCodePhrase": string = "Description of the SIP code and subcode.",
        trunk_fqdn "TrunkFullyQualifiedDomainName": string = "FQDN of the session border controller (the trunk).",
        media_bypass_enabled "MediaBypassEnabled": boolean = "The trunk was enabled for media bypass.",
    }
}

table! {
    /// The 2020 seed's shape, for migrations.
    SeedRow<'a>, SEED = "TEAMSGraphCallRecords_CL", "Seed-compatible: one row per callRecord as the 2020 Data Collector setup wrote it (nested values flattened with _, arrays as JSON strings); post it with Log-Type TEAMSGraphCallRecords; the Data Collector API adds the _CL and type suffixes." {
        id "id": string = "callRecord id (id_s).",
        version "version": long = "callRecord version (version_d).",
        call_type "type": string = "Call type (Type_s).",
        modalities "modalities": string = "Modalities as a JSON string (modalities_s).",
        last_modified "lastModifiedDateTime": datetime = "lastModifiedDateTime_t.",
        start_time "startDateTime": datetime = "startDateTime_t.",
        end_time "endDateTime": datetime = "endDateTime_t.",
        join_web_url "joinWebUrl": string = "joinWebUrl_s.",
        organizer_user_id "organizer_user_id": string = "organizer_user_id_s (organizer_v2 when the deprecated organizer is empty).",
        organizer_user_display_name "organizer_user_displayName": string = "organizer_user_displayName_s.",
        organizer_user_tenant_id "organizer_user_tenantId": string = "organizer_user_tenantId_s.",
        organizer_phone_id "organizer_phone_id": string = "organizer_phone_id_s.",
        organizer_phone_display_name "organizer_phone_displayName": string = "organizer_phone_displayName_s.",
        participants "participants": string = "Participant identity sets as a JSON string (participants_s).",
        sessions "sessions": string = "Sessions as a JSON string (sessions_s).",
    }
}

/// Every table: the callRecord tables, the PSTN and Direct Routing logs, the seed-compatible one last.
pub const TABLES: &[Table] = &[CALL, LEG, STREAM, PARTICIPANT, PSTN_CALL, DIRECT_ROUTING_CALL, SEED];

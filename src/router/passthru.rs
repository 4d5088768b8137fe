//! Payload passthru mode on the routing path: who may use it, and what happens when the receiving
//! peer cannot take it.
//!
//! The attributes themselves ride with the payload ([`AppPayload::ppt`]) to whichever shard
//! delivers it, so an EVENT is still built once per encoding and an INVOCATION or RESULT once, by
//! the shard that holds the payload. A message without `ppt_` options pays one emptiness check.

use std::borrow::Cow;

use crate::protocol::codes;
use crate::protocol::errors;
use crate::protocol::features::ClientFeatures;
use crate::protocol::passthru::Passthru;
use crate::protocol::{Message, Val};
use crate::router::dealer::error_frame;
use crate::router::session::PendingInvocation;
use crate::router::wire::AppPayload;
use crate::router::Router;

impl Router {
    /// Why a message of session `sid` breaks the passthru rules, if it does: malformed `ppt_`
    /// attributes, or any at all from a peer that did not announce `payload_passthru_mode` (the
    /// specification makes both protocol errors).
    pub(crate) fn passthru_violation(&self, sid: u64, msg: &Message<'_>) -> Option<String> {
        let attrs = match msg {
            Message::Publish { options, .. }
            | Message::Call { options, .. }
            | Message::Yield { options, .. } => options,
            Message::Error { details, .. } => details,
            _ => return None,
        };
        if attrs.is_empty_dict() {
            return None;
        }
        let name = || codes::name(msg.code());
        match Passthru::read(attrs) {
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", name())),
            Ok(Some(_)) if self.announced_passthru(sid) => None,
            Ok(Some(_)) => Some(format!(
                "{} in payload passthru mode from a peer that did not announce payload_passthru_mode",
                name()
            )),
        }
    }

    pub(crate) fn announced_passthru(&self, sid: u64) -> bool {
        self.sessions
            .get(&sid)
            .is_some_and(|s| s.features.has(ClientFeatures::PAYLOAD_PASSTHRU))
    }

    /// A YIELD in passthru mode for a caller that did not announce the mode. The specification
    /// answers the callee `wamp.error.feature_not_supported` (an ERROR for its YIELD); the caller,
    /// which must never be left waiting, gets the same error for its CALL instead of a RESULT it
    /// could not read.
    pub(crate) fn refuse_passthru_yield(
        &mut self,
        callee: u64,
        request: u64,
        pending: &PendingInvocation,
    ) {
        self.reply_error_text(
            callee,
            codes::YIELD,
            request,
            errors::FEATURE_NOT_SUPPORTED,
            "the caller did not announce payload_passthru_mode",
        );
        let err = error_frame(
            pending.caller_enc,
            pending.caller_request,
            errors::FEATURE_NOT_SUPPORTED,
            "the callee answered in payload passthru mode, which the caller did not announce",
        );
        self.finish_call(pending.caller_shard, pending.caller, err);
    }

    /// An ERROR in passthru mode for a caller that did not announce the mode. The specification
    /// forwards the attributes with ERROR but makes passthru work only between peers that all
    /// announced it, and for the same situation with YIELD calls it an application error: the
    /// caller gets `wamp.error.feature_not_supported` (naming the callee's error) instead of an
    /// answer it could not read. The callee is not told: WAMP has no reply to an ERROR.
    pub(crate) fn refuse_passthru_error(&mut self, pending: &PendingInvocation, error: &str) {
        let text = format!(
            "the callee failed with {error} in payload passthru mode, which the caller did not announce"
        );
        let err = error_frame(
            pending.caller_enc,
            pending.caller_request,
            errors::FEATURE_NOT_SUPPORTED,
            &text,
        );
        self.finish_call(pending.caller_shard, pending.caller, err);
    }
}

/// RESULT.Details: `progress` for a progressive result, and the passthru attributes of the answer.
pub(crate) fn result_details(progress: bool, payload: &AppPayload) -> Val<'_> {
    if !progress && payload.ppt.is_none() {
        return Val::empty_dict();
    }
    let mut d = Vec::new();
    if progress {
        d.push((Cow::Borrowed("progress"), Val::Bool(true)));
    }
    payload.append_passthru(&mut d);
    Val::Dict(d)
}

/// True when `payload` is in passthru mode and its receiver did not announce the mode.
pub(crate) fn unreadable_for(payload: &AppPayload, receiver: ClientFeatures) -> bool {
    payload.ppt.is_some() && !receiver.has(ClientFeatures::PAYLOAD_PASSTHRU)
}

//! Error and close-reason URIs predefined by the WAMP specification.

// Session close reasons.
pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
pub const CLOSE_REALM: &str = "wamp.close.close_realm";
pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
pub const CLOSE_NORMAL: &str = "wamp.close.normal";
pub const KILLED: &str = "wamp.close.killed";

// Interaction / session errors.
pub const INVALID_URI: &str = "wamp.error.invalid_uri";
pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
/// A shared registration's invocation policy differs from the one the REGISTER asks for (the name
/// Crossbar.io uses).
pub const PROCEDURE_EXISTS_WITH_DIFFERENT_POLICY: &str =
    "wamp.error.procedure_exists_with_different_invocation_policy";
pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
pub const AUTHORIZATION_FAILED: &str = "wamp.error.authorization_failed";
pub const AUTHORIZATION_DENIED: &str = "wamp.error.authorization_denied";
pub const AUTHORIZATION_REQUIRED: &str = "wamp.error.authorization_required";
pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
pub const AUTHENTICATION_DENIED: &str = "wamp.error.authentication_denied";
pub const AUTHENTICATION_REQUIRED: &str = "wamp.error.authentication_required";
pub const NO_MATCHING_AUTH_METHOD: &str = "wamp.error.no_matching_auth_method";
pub const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";
pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
/// Spelling used by the current specification text.
pub const CANCELED: &str = "wamp.error.canceled";
/// Older spelling still emitted by some peers.
pub const CANCELLED: &str = "wamp.error.cancelled";
pub const OPTION_NOT_ALLOWED: &str = "wamp.error.option_not_allowed";
/// Name used by older revisions of the specification for "no callee matches the call".
pub const NO_ELIGIBLE_CALLEE: &str = "wamp.error.no_eligible_callee";
pub const NO_AVAILABLE_CALLEE: &str = "wamp.error.no_available_callee";
pub const OPTION_DISALLOWED_DISCLOSE_ME: &str = "wamp.error.option_disallowed.disclose_me";
pub const DISCLOSE_ME_NOT_ALLOWED: &str = "wamp.error.disclose_me.not_allowed";
pub const NETWORK_FAILURE: &str = "wamp.error.network_failure";
pub const UNAVAILABLE: &str = "wamp.error.unavailable";
pub const TIMEOUT: &str = "wamp.error.timeout";
pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";
/// Not in the core spec; used by implementations for interface type checks.
pub const TYPE_CHECK_ERROR: &str = "wamp.error.type_check_error";

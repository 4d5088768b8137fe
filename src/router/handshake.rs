//! The authentication handshake on the router side: CHALLENGE out, AUTHENTICATE in, then the join.
//! The decisions themselves are made by [`crate::auth`].

use std::borrow::Cow;

use super::{Conn, Flow, Router};
use crate::protocol::features::ClientFeatures;
use crate::protocol::{codes, Message, Val};

/// A session that said HELLO and was challenged: what its WELCOME will need.
pub(crate) struct PendingJoin {
    pub realm: usize,
    /// The session id, fixed at HELLO (WAMP-CRA's challenge names it).
    pub session: u64,
    pub features: ClientFeatures,
    pub auth: Option<crate::auth::Pending>,
}

impl Router {
    /// Sends CHALLENGE and parks the handshake on the connection until AUTHENTICATE.
    pub(super) fn challenge(
        &mut self,
        conn: &mut Conn,
        mut join: PendingJoin,
        authmethod: &'static str,
        extra: Val<'static>,
        pending: crate::auth::Pending,
    ) -> Flow {
        join.auth = Some(pending);
        conn.pending = Some(Box::new(join));
        let msg = Message::Challenge {
            authmethod: Cow::Borrowed(authmethod),
            extra,
        };
        self.reply_peer(&conn.peer.clone(), &msg);
        Flow::Continue
    }

    /// The message after CHALLENGE: AUTHENTICATE (or ABORT); anything else breaks the protocol.
    pub(super) fn on_authenticate(&mut self, conn: &mut Conn, msg: Message<'_>) -> Flow {
        let mut join = *conn
            .pending
            .take()
            .expect("called with a pending handshake");
        let (signature, extra) = match msg {
            Message::Authenticate { signature, extra } => (signature, extra),
            Message::Abort { .. } => return Flow::Close,
            other => {
                return self.violation(
                    conn,
                    &format!("expected AUTHENTICATE, got {}", codes::name(other.code())),
                )
            }
        };
        let pending = join.auth.take().expect("a challenged handshake");
        let auth = self.auth.clone();
        match auth.authenticate(pending, &signature, &extra, &conn.info) {
            Ok(who) => self.join(conn, join, who),
            Err(r) => {
                self.abort(conn, r.reason, r.message);
                Flow::Close
            }
        }
    }
}

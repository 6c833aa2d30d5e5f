//! The walk across hosts ([`Walk`]): an event's chain and arrivals, and for each arrival that joined one
//! connect, that connect's own lineage, a hop further, until the hop bound, the bound on lineages in one
//! answer, or a connect already walked (a cycle: connections that arrive at each other).

use std::collections::HashSet;

use auditloop_model::EventBody;
use auditloop_protocol::api::lineage::{
    Arrival, Candidate, EndpointView, Join, Lineage, Origin, Stopped,
};

use crate::lineage::arrivals::{self, FoundArrival};
use crate::lineage::chain;
use crate::lineage::join::Joined;
use crate::lineage::read::{Ctx, Found};
use crate::store::columns::ends;
use crate::store::{Endpoint, StoreError};

/// One answer's walk: what it reads with, and what it walked already.
pub(super) struct Walk<'a> {
    ctx: Ctx<'a>,
    /// The events (host, seq) whose lineage is part of the answer.
    walked: HashSet<(String, u64)>,
}

impl<'a> Walk<'a> {
    /// A walk reading with `ctx`.
    pub(super) fn new(ctx: Ctx<'a>) -> Walk<'a> {
        Walk {
            ctx,
            walked: HashSet::new(),
        }
    }

    /// The lineage of `found`, `hop` connections away from the event asked about.
    pub(super) fn lineage(&mut self, found: &Found, hop: u32) -> Result<Lineage, StoreError> {
        self.walked.insert((found.host.clone(), found.seq));
        let chain = chain::walk(self.ctx, found)?;
        let arrivals = arrivals::find(self.ctx, found, &chain)?
            .into_iter()
            .map(|a| self.arrival(a, hop))
            .collect::<Result<Vec<_>, _>>()?;
        let mut links = chain.links.into_iter().map(|l| l.view);
        let process = links.next().unwrap_or_default();
        Ok(Lineage {
            host: found.host.clone(),
            seq: found.seq,
            kind: found.kind.clone(),
            time_ns: found.time_ns(),
            verified: found.verified,
            process,
            ancestors: links.collect(),
            ancestry_end: chain.end,
            arrivals,
        })
    }

    fn arrival(&mut self, a: FoundArrival, hop: u32) -> Result<Arrival, StoreError> {
        let join = match a.join {
            Joined::Matched(connect) => {
                let key = (connect.host.clone(), connect.seq);
                let options = self.ctx.options;
                let (lineage, stopped) = if self.walked.contains(&key) {
                    (None, Some(Stopped::Cycle))
                } else if hop >= options.max_hops || self.walked.len() >= options.max_lineages {
                    (None, Some(Stopped::Limit))
                } else {
                    (Some(self.lineage(&connect, hop + 1)?), None)
                };
                Join::Matched {
                    origin: Box::new(Origin {
                        connect: candidate(&connect),
                        lineage,
                        stopped,
                    }),
                }
            }
            Joined::Ambiguous(found, truncated) => Join::Ambiguous {
                candidates: found.iter().map(candidate).collect(),
                truncated,
            },
            Joined::Unmatched(reason, detail) => Join::Unmatched { reason, detail },
        };
        Ok(Arrival {
            depth: u32::try_from(a.depth).unwrap_or(u32::MAX),
            pid: a.pid,
            via: a.via,
            accept_seq: a.accept.as_ref().map(|f| f.seq),
            time_ns: a.accept.as_ref().map(Found::time_ns),
            local: a.local.as_ref().map(view),
            remote: a.remote.as_ref().map(view),
            earlier_accepts: a.earlier_accepts,
            join,
        })
    }
}

/// A connect as a join candidate.
fn candidate(found: &Found) -> Candidate {
    let p = &found.event.process;
    let (local, remote) = if let EventBody::Net(n) = &found.event.event {
        ends(n)
    } else {
        (None, None)
    };
    let shown = |end: Option<Endpoint>| {
        end.as_ref().map(view).unwrap_or(EndpointView {
            address: String::new(),
            port: 0,
        })
    };
    Candidate {
        host: found.host.clone(),
        seq: found.seq,
        time_ns: found.time_ns(),
        verified: found.verified,
        pid: p.pid,
        start_ns: p.start.map(|t| t.0),
        exe: p.exe.clone(),
        comm: p.comm.clone(),
        local: shown(local),
        remote: shown(remote),
    }
}

fn view(end: &Endpoint) -> EndpointView {
    EndpointView {
        address: end.address.clone(),
        port: end.port,
    }
}

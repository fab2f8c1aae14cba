//! Consumer-group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) over the
//! coordinator state machine.

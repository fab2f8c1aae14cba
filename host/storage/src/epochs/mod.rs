//! The leader-epoch file: which leader epoch starts at which offset (Kafka's
//! `leader-epoch-checkpoint`). Being written; see issue "A broker shaped for the cluster".

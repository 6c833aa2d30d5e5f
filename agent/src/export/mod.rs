//! Export of journal records to other formats (JSON lines, ECS).

pub mod ecs;

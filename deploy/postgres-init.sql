-- Runs once, when the PostgreSQL volume is new: Temporal's two databases and ours.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
CREATE DATABASE custody;

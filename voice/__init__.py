"""Audio conversion (an ffmpeg with AMR-NB) and optional speech providers."""

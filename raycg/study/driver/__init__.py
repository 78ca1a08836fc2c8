"""Running a study on Ray: ``study.py`` (run / resume / validate, the study record), ``tuner.py`` (the
Tune wiring: Ray start-up, trainable, param space, run config), ``progress.py`` (driver output)."""

from raycg.study.driver.study import (
    StudyIncomplete,
    create_study,
    resume_study,
    run_study,
    study_record,
    study_uri,
    validate_study,
)

__all__ = ["StudyIncomplete", "create_study", "resume_study", "run_study", "study_record", "study_uri",
           "validate_study"]

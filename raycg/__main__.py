from raycg.cli import main

raise SystemExit(main())

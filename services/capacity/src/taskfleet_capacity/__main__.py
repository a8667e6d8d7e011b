from taskfleet_capacity.cli import main

raise SystemExit(main())

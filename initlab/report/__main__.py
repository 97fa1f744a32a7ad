from initlab.report.cli import main

raise SystemExit(main())

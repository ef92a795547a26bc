from secure_ml_template.cli import main

raise SystemExit(main())

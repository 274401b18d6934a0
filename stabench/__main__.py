from stabench.cli import main

main()

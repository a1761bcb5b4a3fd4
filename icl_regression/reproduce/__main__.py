from icl_regression.reproduce.app import main

main()

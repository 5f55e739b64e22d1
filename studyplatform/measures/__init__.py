"""What a study measures and how many ratings it needs: pure definitions that both apps
share (``surveys`` to validate and plan studies, ``analysis`` to score and report them).

Standard library only: no Django, numpy or scipy. The modules live here, in the project
package, because imports between the apps run one way (analysis -> surveys) and the
statistics (``analysis.stats``) import nothing from ``surveys``; a module both need can
belong to neither app.
"""

# Kits, soundfonts and song arguments of render_groove.py shared by train_songs.sh and five_classes.sh; sourced
# after they set $shared (the folder of the shared data).
# shellcheck disable=SC2034  # the arrays are used by the scripts that source this file
SF2=/usr/share/sounds/sf2 SF3=/usr/share/sounds/sf3
kits=$shared/drumkits
songs=(--accompaniment "$shared/pop909-midi" --songs 1-809 --accompaniment-share 0.7 --accompaniment-db=-6,12
       --accompaniment-soundfont "$SF2/FluidR3_GM.sf2" --accompaniment-soundfont "$SF3/MuseScore_General.sf3")
heldout_songs=(--accompaniment "$shared/pop909-midi" --songs 810-909 --accompaniment-share 1 --accompaniment-db 0,0
               --accompaniment-soundfont "$SF2/FluidR3_GM.sf2" --accompaniment-soundfont "$SF2/TimGM6mb.sf2")
H2=(--hydrogen-kit Audiophob --hydrogen-kit BJA_Pacific --hydrogen-kit ColomboAcousticDrumkit
    --hydrogen-kit ElectricEmpireKit --hydrogen-kit ForzeeStereo --hydrogen-kit HardElectro1
    --hydrogen-kit Millo-Drums_v.1 --hydrogen-kit Millo_MultiLayered2 --hydrogen-kit Millo_MultiLayered3
    --hydrogen-kit "The Black Pearl 1.0" --hydrogen-kit VariBreaks --hydrogen-kit rumpf_kit_z01_h2)
SOUNDFONTS=(--soundfont "$SF2/FluidR3_GM.sf2" --soundfont "$SF3/MuseScore_General.sf3" --soundfont "$SF2/FluidR3_GM.sf2@8"
            --soundfont "$SF2/FluidR3_GM.sf2@16" --soundfont "$SF2/FluidR3_GM.sf2@32"
            --soundfont "$SF3/MuseScore_General.sf3@16")
REAL=(--hydrogen-kit "$kits/GogodzePhuVolII-close" --hydrogen-kit "$kits/GogodzePhuVolII-room"
      --hydrogen-kit "$kits/SamsSonor-mix")
MULDJORD=(--hydrogen-kit "$kits/MuldjordKit-close" --hydrogen-kit "$kits/MuldjordKit-room")

"""ISO 3166 country codes, so every source's countries end up as alpha-2 codes (table taken from pycountry).

Embedded rather than a dependency: the lookup needs ~2 KB of data, pycountry ships ~30 MB of translations.
"""

from __future__ import annotations

_ALPHA3 = (
    "ABW:AW AFG:AF AGO:AO AIA:AI ALA:AX ALB:AL AND:AD ARE:AE ARG:AR ARM:AM ASM:AS ATA:AQ ATF:TF ATG:AG AUS:AU "
    "AUT:AT AZE:AZ BDI:BI BEL:BE BEN:BJ BES:BQ BFA:BF BGD:BD BGR:BG BHR:BH BHS:BS BIH:BA BLM:BL BLR:BY BLZ:BZ "
    "BMU:BM BOL:BO BRA:BR BRB:BB BRN:BN BTN:BT BVT:BV BWA:BW CAF:CF CAN:CA CCK:CC CHE:CH CHL:CL CHN:CN CIV:CI "
    "CMR:CM COD:CD COG:CG COK:CK COL:CO COM:KM CPV:CV CRI:CR CUB:CU CUW:CW CXR:CX CYM:KY CYP:CY CZE:CZ DEU:DE "
    "DJI:DJ DMA:DM DNK:DK DOM:DO DZA:DZ ECU:EC EGY:EG ERI:ER ESH:EH ESP:ES EST:EE ETH:ET FIN:FI FJI:FJ FLK:FK "
    "FRA:FR FRO:FO FSM:FM GAB:GA GBR:GB GEO:GE GGY:GG GHA:GH GIB:GI GIN:GN GLP:GP GMB:GM GNB:GW GNQ:GQ GRC:GR "
    "GRD:GD GRL:GL GTM:GT GUF:GF GUM:GU GUY:GY HKG:HK HMD:HM HND:HN HRV:HR HTI:HT HUN:HU IDN:ID IMN:IM IND:IN "
    "IOT:IO IRL:IE IRN:IR IRQ:IQ ISL:IS ISR:IL ITA:IT JAM:JM JEY:JE JOR:JO JPN:JP KAZ:KZ KEN:KE KGZ:KG KHM:KH "
    "KIR:KI KNA:KN KOR:KR KWT:KW LAO:LA LBN:LB LBR:LR LBY:LY LCA:LC LIE:LI LKA:LK LSO:LS LTU:LT LUX:LU LVA:LV "
    "MAC:MO MAF:MF MAR:MA MCO:MC MDA:MD MDG:MG MDV:MV MEX:MX MHL:MH MKD:MK MLI:ML MLT:MT MMR:MM MNE:ME MNG:MN "
    "MNP:MP MOZ:MZ MRT:MR MSR:MS MTQ:MQ MUS:MU MWI:MW MYS:MY MYT:YT NAM:NA NCL:NC NER:NE NFK:NF NGA:NG NIC:NI "
    "NIU:NU NLD:NL NOR:NO NPL:NP NRU:NR NZL:NZ OMN:OM PAK:PK PAN:PA PCN:PN PER:PE PHL:PH PLW:PW PNG:PG POL:PL "
    "PRI:PR PRK:KP PRT:PT PRY:PY PSE:PS PYF:PF QAT:QA REU:RE ROU:RO RUS:RU RWA:RW SAU:SA SDN:SD SEN:SN SGP:SG "
    "SGS:GS SHN:SH SJM:SJ SLB:SB SLE:SL SLV:SV SMR:SM SOM:SO SPM:PM SRB:RS SSD:SS STP:ST SUR:SR SVK:SK SVN:SI "
    "SWE:SE SWZ:SZ SXM:SX SYC:SC SYR:SY TCA:TC TCD:TD TGO:TG THA:TH TJK:TJ TKL:TK TKM:TM TLS:TL TON:TO TTO:TT "
    "TUN:TN TUR:TR TUV:TV TWN:TW TZA:TZ UGA:UG UKR:UA UMI:UM URY:UY USA:US UZB:UZ VAT:VA VCT:VC VEN:VE VGB:VG "
    "VIR:VI VNM:VN VUT:VU WLF:WF WSM:WS YEM:YE ZAF:ZA ZMB:ZM ZWE:ZW "
)
_NAMES = (
    "afghanistan=AF albania=AL algeria=DZ american_samoa=AS andorra=AD angola=AO anguilla=AI antarctica=AQ "
    "antigua_and_barbuda=AG argentina=AR armenia=AM aruba=AW australia=AU austria=AT azerbaijan=AZ bahamas=BS "
    "bahrain=BH bangladesh=BD barbados=BB belarus=BY belgium=BE belize=BZ benin=BJ bermuda=BM bhutan=BT bolivia=BO "
    "bolivia,_plurinational_state_of=BO bonaire,_sint_eustatius_and_saba=BQ bosnia_and_herzegovina=BA botswana=BW "
    "bouvet_island=BV brazil=BR british_indian_ocean_territory=IO brunei_darussalam=BN bulgaria=BG burkina_faso=BF "
    "burundi=BI cabo_verde=CV cambodia=KH cameroon=CM canada=CA cayman_islands=KY central_african_republic=CF "
    "chad=TD chile=CL china=CN christmas_island=CX cocos_(keeling)_islands=CC colombia=CO comoros=KM congo=CG "
    "congo,_the_democratic_republic_of_the=CD cook_islands=CK costa_rica=CR croatia=HR cuba=CU curaçao=CW cyprus=CY "
    "czechia=CZ côte_d'ivoire=CI denmark=DK djibouti=DJ dominica=DM dominican_republic=DO ecuador=EC egypt=EG "
    "el_salvador=SV equatorial_guinea=GQ eritrea=ER estonia=EE eswatini=SZ ethiopia=ET "
    "falkland_islands_(malvinas)=FK faroe_islands=FO fiji=FJ finland=FI france=FR french_guiana=GF "
    "french_polynesia=PF french_southern_territories=TF gabon=GA gambia=GM georgia=GE germany=DE ghana=GH "
    "gibraltar=GI greece=GR greenland=GL grenada=GD guadeloupe=GP guam=GU guatemala=GT guernsey=GG guinea=GN "
    "guinea-bissau=GW guyana=GY haiti=HT heard_island_and_mcdonald_islands=HM holy_see_(vatican_city_state)=VA "
    "honduras=HN hong_kong=HK hungary=HU iceland=IS india=IN indonesia=ID iran=IR iran,_islamic_republic_of=IR "
    "iraq=IQ ireland=IE isle_of_man=IM israel=IL italy=IT jamaica=JM japan=JP jersey=JE jordan=JO kazakhstan=KZ "
    "kenya=KE kiribati=KI korea,_democratic_people's_republic_of=KP korea,_republic_of=KR kuwait=KW kyrgyzstan=KG "
    "lao_people's_democratic_republic=LA laos=LA latvia=LV lebanon=LB lesotho=LS liberia=LR libya=LY "
    "liechtenstein=LI lithuania=LT luxembourg=LU macao=MO madagascar=MG malawi=MW malaysia=MY maldives=MV mali=ML "
    "malta=MT marshall_islands=MH martinique=MQ mauritania=MR mauritius=MU mayotte=YT mexico=MX "
    "micronesia,_federated_states_of=FM moldova=MD moldova,_republic_of=MD monaco=MC mongolia=MN montenegro=ME "
    "montserrat=MS morocco=MA mozambique=MZ myanmar=MM namibia=NA nauru=NR nepal=NP netherlands=NL new_caledonia=NC "
    "new_zealand=NZ nicaragua=NI niger=NE nigeria=NG niue=NU norfolk_island=NF north_korea=KP north_macedonia=MK "
    "northern_mariana_islands=MP norway=NO oman=OM pakistan=PK palau=PW palestine,_state_of=PS panama=PA "
    "papua_new_guinea=PG paraguay=PY peru=PE philippines=PH pitcairn=PN poland=PL portugal=PT puerto_rico=PR "
    "qatar=QA romania=RO russian_federation=RU rwanda=RW réunion=RE saint_barthélemy=BL "
    "saint_helena,_ascension_and_tristan_da_cunha=SH saint_kitts_and_nevis=KN saint_lucia=LC "
    "saint_martin_(french_part)=MF saint_pierre_and_miquelon=PM saint_vincent_and_the_grenadines=VC samoa=WS "
    "san_marino=SM sao_tome_and_principe=ST saudi_arabia=SA senegal=SN serbia=RS seychelles=SC sierra_leone=SL "
    "singapore=SG sint_maarten_(dutch_part)=SX slovakia=SK slovenia=SI solomon_islands=SB somalia=SO "
    "south_africa=ZA south_georgia_and_the_south_sandwich_islands=GS south_korea=KR south_sudan=SS spain=ES "
    "sri_lanka=LK sudan=SD suriname=SR svalbard_and_jan_mayen=SJ sweden=SE switzerland=CH syria=SY "
    "syrian_arab_republic=SY taiwan=TW taiwan,_province_of_china=TW tajikistan=TJ tanzania=TZ "
    "tanzania,_united_republic_of=TZ thailand=TH timor-leste=TL togo=TG tokelau=TK tonga=TO trinidad_and_tobago=TT "
    "tunisia=TN turkmenistan=TM turks_and_caicos_islands=TC tuvalu=TV türkiye=TR uganda=UG ukraine=UA "
    "united_arab_emirates=AE united_kingdom=GB united_states=US united_states_minor_outlying_islands=UM uruguay=UY "
    "uzbekistan=UZ vanuatu=VU venezuela=VE venezuela,_bolivarian_republic_of=VE viet_nam=VN vietnam=VN "
    "virgin_islands,_british=VG virgin_islands,_u.s.=VI wallis_and_futuna=WF western_sahara=EH yemen=YE zambia=ZM "
    "zimbabwe=ZW åland_islands=AX "
)

ALPHA3_TO_ALPHA2: dict[str, str] = dict(pair.split(":") for pair in _ALPHA3.split())
NAME_TO_ALPHA2: dict[str, str] = {
    name.replace("_", " "): code for name, code in (item.rsplit("=", 1) for item in _NAMES.split())
}
ALPHA2 = frozenset(ALPHA3_TO_ALPHA2.values())
#: Codes some EU sources use instead of ISO's.
EU_ALIASES = {"EL": "GR", "UK": "GB"}


def to_alpha2(value: str | None) -> str | None:
    """An ISO alpha-2 code for an alpha-2/alpha-3 code or an English country name; None if unknown."""
    if not value:
        return None
    text = value.strip()
    upper = text.upper()
    upper = EU_ALIASES.get(upper, upper)
    if len(upper) == 2 and upper in ALPHA2:
        return upper
    if len(upper) == 3 and upper in ALPHA3_TO_ALPHA2:
        return ALPHA3_TO_ALPHA2[upper]
    return NAME_TO_ALPHA2.get(text.lower())

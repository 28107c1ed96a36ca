"""Build the bundled sample: a small alt-text pool plus a MetaCLIP-style metadata list.

Everything is synthetic and generated from the word lists and templates below, so the
sample can be rebuilt byte for byte with `python data_samples/make_sample.py`.
Only numpy, pyarrow and the standard library are used; the seed is fixed.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240501
OUT = Path(__file__).resolve().parent
PART_ROWS = (18_000, 12_000)  # uneven on purpose: readers must not assume equal parts
ROW_GROUP = 5_000
SLOT_ZIPF = 0.85  # rank exponent for word choice: lower = flatter, longer matched tail
REF_TEXTS, REF_MIN_COUNT = 200_000, 4  # reference corpus for mining bigram entries
UNSEEN_COMBOS = 250  # modifier+product bigrams added without looking: mostly never match
TITLE_SHARE = 0.2  # share of single common words that also get a capitalised title entry


def L(s: str) -> list[str]:
    """Split a ';'-separated word list (';' lets items contain spaces and '|')."""
    return [x.strip() for x in s.split(";") if x.strip()]


# --- vocabulary: order within a list = popularity rank (sampled Zipf-like) -------------
V = {
    "color": L(
        "black;white;blue;red;grey;green;brown;pink;gold;silver;navy;beige;yellow;orange;purple;"
        "gray;cream;ivory;teal;burgundy;khaki;olive;charcoal;turquoise;maroon;coral;mint;lavender"
    ),
    "material": L(
        "leather;wooden;cotton;metal;glass;ceramic;stainless steel;linen;wool;velvet;oak;plastic;"
        "marble;bamboo;silk;denim;rattan;walnut;brass;suede;porcelain;copper"
    ),
    "product": L(
        "chair;table;lamp;sofa;dress;shirt;mug;rug;bag;watch;shoes;ring;necklace;jacket;t-shirt;"
        "pillow;office chair;coffee table;boots;backpack;curtains;bed;desk;mirror;vase;clock;"
        "earrings;hoodie;jeans;skirt;scarf;hat;sneakers;wallet;belt;phone case;bookshelf;"
        "nightstand;dresser;armchair;ottoman;bench;candle;planter;basket;blanket;towel;"
        "duvet cover;flower pot;storage box;shoe rack;coat rack;laundry basket;cookware set;"
        "coffee maker;toaster;blender;desk lamp;lamp shade;doormat;pajamas;swimsuit;raincoat;"
        "beanie;gloves;socks;leggings;blazer;cardigan;bar stool;dining table;side table;"
        "floor lamp;throw pillow;area rug;wall art;tote bag;water bottle;frying pan;tea kettle;"
        "sandals;coat;sweater;bracelet;umbrella;headphones;keyboard;sofa bed;recliner;"
        "cushion cover;bath mat;shower curtain;teapot;wine glass;cutting board;lunch box;"
        "pencil case;notebook;yoga mat;dog bed;cat tree;bird feeder;garden hose;picture frame;"
        "wall clock;pendant light;ceiling fan;rocking chair;bean bag;crossbody bag;ankle boots"
    ),
    "feature": L(
        "armrests;wheels;drawers;storage;pockets;a hood;zipper;lid;handle;cushions;"
        "adjustable height;metal legs;gold trim;floral print;lace trim;buttons;LED light;USB port;"
        "removable cover;side pockets;a drawer;long sleeves;a belt;a hidden zipper;reading light"
    ),
    "audience": L(
        "for Women;for Men;for Kids;for Girls;for Boys;for Home;for Living Room;for Bedroom;for Office;for Kitchen"
    ),
    "brand": L("Nordvik;Aurelle;Brightwood;Casa Lumo;Kestrel & Co;Maple Lane;Oakhurst;Velora;Zentro;Hollis"),
    "suffix": L(
        "- Set of {n};(Pack of {n});| Free Shipping;- Size {size};{n} pcs;- New Arrival;(vintage);"
        "- Sale;, {size};- {year} Collection"
    ),
    "adj": L(
        "modern;vintage;small;large;round;mini;classic;cute;luxury;handmade;rustic;elegant;simple;"
        "portable;waterproof;soft;comfortable;minimalist;retro;wireless;foldable;oversized;"
        "lightweight;chunky;slim;fluffy;antique;industrial;boho;striped"
    ),
    "n": L("2;4;3;6;1;10;5;12;8;20;24;50;100;3000"),
    "size": L("M;L;S;XL;XXL;Queen;King;Twin;8x10;60x90 cm;10 x 12 inch"),
    "people": L(
        "woman;man;young woman;girl;boy;young man;child;couple;family;little girl;senior couple;"
        "businessman;businesswoman;group of friends;mother and daughter;father and son;students;"
        "baby;teenager;doctor;chef;nurse;old man;athlete;little boy;farmer;artist;teacher;"
        "grandmother;toddler;surfer;photographer;musician"
    ),
    "action": L(
        "drinking coffee;smiling;working on laptop;reading a book;talking on the phone;"
        "walking the dog;laughing;running;cooking dinner;riding a bike;playing guitar;"
        "holding a cup of tea;taking a selfie;looking at camera;sitting on a bench;standing;"
        "dancing;eating pizza;drinking wine;washing dishes;feeding the ducks;building a sandcastle;"
        "watching tv;brushing teeth;picking apples;carrying shopping bags;having breakfast;"
        "blowing bubbles;planting a tree;shopping;hiking;relaxing;jumping;swimming;"
        "writing in a notebook;using a smartphone;painting;gardening;doing yoga;playing chess;"
        "baking bread;fishing;skateboarding;meditating;waiting for the bus"
    ),
    "setting": L(
        "cafe;park;office;kitchen;living room;beach;street;city;forest;studio;garden;gym;"
        "restaurant;library;classroom;airport;coffee shop;field;mountains;bedroom;snow;rain;"
        "hospital;supermarket;train station;meadow;vineyard;subway;farm;bakery"
    ),
    "animal": L(
        "dog;cat;puppy;kitten;bird;horse;cow;lion;elephant;tiger;bear;fox;deer;rabbit;owl;eagle;"
        "duck;sheep;butterfly;fish;squirrel;wolf;monkey;giraffe;zebra;goat;pig;chicken;parrot;frog;"
        "hamster;panda;swan;goose;donkey;golden retriever;labrador;beagle"
    ),
    "animal_action": L("playing;sleeping;running;sitting;lying;eating;looking at camera;jumping;walking"),
    "scene": L(
        "sunset over the ocean;mountain lake with reflection;snow covered trees;"
        "waterfall in the forest;field of sunflowers;sunrise over the mountains;autumn leaves;"
        "cherry blossoms;starry night sky;green hills and blue sky;rocky coast;"
        "tropical beach with palm trees;foggy forest;desert sand dunes;northern lights;"
        "misty valley at dawn;lavender field;frozen lake;rainbow over the hills;"
        "wild flowers in a meadow;tulip field;pine forest in winter;river delta from above;"
        "volcano at night;bamboo forest;rice terraces;coral reef;autumn forest path;old oak tree;"
        "stormy sea;river in the canyon"
    ),
    "vehicle": L(
        "car;truck;bicycle;motorcycle;bus;train;boat;van;scooter;airplane;sports car;pickup truck;"
        "tractor;sailboat;yacht;taxi;fire truck;school bus;ferry;helicopter;camper van;tram;canoe;"
        "convertible"
    ),
    "road": L(
        "street;highway;country road;parking lot;bridge;harbor;mountain road;dirt road;beach;"
        "driveway;runway;railway station"
    ),
    "sport": L(
        "soccer;basketball;tennis;baseball;golf;cycling;surfing;skiing;rugby;volleyball;hockey;"
        "boxing;climbing;snowboarding;cricket;table tennis;badminton;skateboarding"
    ),
    "gear": L(
        "ball;racket;helmet;gloves;jersey;shoes;bike;trophy;skis;surfboard;bat;net;water bottle;knee pads;goggles"
    ),
    "gadget": L(
        "laptop;smartphone;headphones;camera;tablet;smart watch;speaker;monitor;drone;keyboard;"
        "mouse;charger;printer;router;game controller;earbuds;power bank;webcam;hard drive;"
        "microphone;projector;e-reader"
    ),
    "spec": L(
        "16GB RAM;4K;with case;bluetooth;noise cancelling;128GB;USB-C;wireless charging;refurbished;dual camera;RGB;1TB"
    ),
    "region": L(
        "Iceland;Norway;Scotland;Bali;Patagonia;the Alps;Banff National Park;Lake Tahoe;Tuscany;"
        "New Zealand;Yosemite;the Scottish Highlands"
    ),
    "venue": L("beach;garden;church;vineyard;barn;hotel;lake;castle"),
    "room": L(
        "kitchen;living room;bedroom;bathroom;dining room;master bedroom;backyard;patio;basement;"
        "home office;garage;laundry room;guest room"
    ),
    "home_feature": L(
        "fireplace;hardwood floors;granite countertops;large windows;vaulted ceilings;"
        "walk-in closet;swimming pool;open floor plan;stainless steel appliances;"
        "built-in shelves;ocean views;a garden"
    ),
    "town": L(
        "Springfield;Maple Grove;Riverside;Fairview;Oak Park;Lakewood;Georgetown;Franklin;Madison;"
        "Bristol;Salem;Ashland;St. Louis;Portland"
    ),
    "street": L("Maple Street;Oak Avenue;Park Road;Main Street;Cedar Lane;Lake Drive;Hill Road"),
    "dish": L(
        "chocolate chip cookies;banana bread;pizza;pasta;chicken curry;apple pie;pancakes;ice cream;"
        "hot dog;tacos;lasagna;fried rice;cheesecake;lemon cake;grilled salmon;vegetable soup;"
        "avocado toast;burger;caesar salad;beef stew;sushi;brownies;mac and cheese;french toast;"
        "carrot cake;potato salad;chicken wings;smoothie bowl;pumpkin soup;blueberry muffins;"
        "roast chicken;fish and chips;pad thai;ramen;greek salad;banana pancakes;spaghetti bolognese;"
        "chicken soup;apple crumble;beef tacos;mushroom risotto;tomato soup;chocolate cake;"
        "pulled pork;fruit salad;cinnamon rolls;lemon tart;shrimp pasta;omelette;guacamole"
    ),
    "ingredient": L(
        "tomato;basil;garlic;cheese;chocolate;butter;lemon;spinach;mushrooms;onions;bacon;"
        "honey;cinnamon;strawberries;avocado;rice;beans;eggs;mustard;cream;ginger;parsley;"
        "walnuts;feta;chili;lime;coconut;maple syrup;oats;peppers"
    ),
}
PLACES = [
    tuple(L(p.replace("|", ";")))
    for p in L(
        "Eiffel Tower|Paris|France;Statue of Liberty|New York City|USA;Big Ben|London|UK;Colosseum|Rome|Italy;"
        "Times Square|New York City|USA;Tower Bridge|London|England;"
        "Golden Gate Bridge|San Francisco|California;Sagrada Familia|Barcelona|Spain;Taj Mahal|Agra|India;"
        "Sydney Opera House|Sydney|Australia;Brandenburg Gate|Berlin|Germany;Mount Fuji|Tokyo|Japan;"
        "Grand Canal|Venice|Italy;Acropolis|Athens|Greece;Burj Khalifa|Dubai|UAE;"
        "Central Park|New York City|USA;Gateway Arch|St. Louis|Missouri;Hagia Sophia|Istanbul|Turkey;"
        "Christ the Redeemer|Rio de Janeiro|Brazil;Pyramids of Giza|Cairo|Egypt;"
        "Charles Bridge|Prague|Czech Republic;Space Needle|Seattle|USA;Brooklyn Bridge|New York City|USA;"
        "Louvre|Paris|France;Fushimi Inari Shrine|Kyoto|Japan;Notre-Dame Cathedral|Paris|France;"
        "Westminster Abbey|London|England;Trevi Fountain|Rome|Italy;Alhambra|Granada|Spain;"
        "Petronas Towers|Kuala Lumpur|Malaysia;Marina Bay Sands|Singapore|Asia;Blue Mosque|Istanbul|Turkey;"
        "Red Square|Moscow|Russia;Table Mountain|Cape Town|South Africa;CN Tower|Toronto|Canada;"
        "Hollywood Sign|Los Angeles|California;Angkor Wat|Siem Reap|Cambodia;"
        "Edinburgh Castle|Edinburgh|Scotland;Forbidden City|Beijing|China;Tower of London|London|UK"
    )
]
WORKS = [
    tuple(L(p.replace("|", ";")))
    for p in L(
        "The Starry Night|Vincent van Gogh;Mona Lisa|Leonardo da Vinci;The Great Wave off Kanagawa|Hokusai;"
        "Girl with a Pearl Earring|Johannes Vermeer;The Scream|Edvard Munch;Water Lilies|Claude Monet;"
        "The Kiss|Gustav Klimt;The Persistence of Memory|Salvador Dali;Sunflowers|Vincent van Gogh;"
        "The Birth of Venus|Sandro Botticelli;American Gothic|Grant Wood;Nighthawks|Edward Hopper;"
        "Pride and Prejudice|Jane Austen;The Great Gatsby|F. Scott Fitzgerald;Moby Dick|Herman Melville;"
        "War and Peace|Leo Tolstoy;The Hobbit|J.R.R. Tolkien;1984|George Orwell;Jane Eyre|Charlotte Bronte;"
        "Frankenstein|Mary Shelley;Dracula|Bram Stoker;The Night Watch|Rembrandt;Guernica|Pablo Picasso;"
        "The Garden of Earthly Delights|Hieronymus Bosch;Liberty Leading the People|Eugene Delacroix;"
        "The Hay Wain|John Constable;Olympia|Edouard Manet;"
        "Wanderer above the Sea of Fog|Caspar David Friedrich;The Son of Man|Rene Magritte;Emma|Jane Austen;"
        "Great Expectations|Charles Dickens;Anna Karenina|Leo Tolstoy;Don Quixote|Miguel de Cervantes;"
        "Wuthering Heights|Emily Bronte;The Odyssey|Homer;Crime and Punishment|Fyodor Dostoevsky;"
        "Treasure Island|Robert Louis Stevenson"
    )
]
V["landmark"] = [p[0] for p in PLACES]
V["city"] = list(dict.fromkeys(p[1] for p in PLACES))
V["landmark_full"] = [", ".join(p) for p in PLACES]
V["landmark_in_city"] = [f"{p[0]} in {p[1]}" for p in PLACES]
V["city_country"] = [f"{p[1]}, {p[2]}" for p in PLACES]
V["work"] = [f"{t} by {a}" for t, a in WORKS]
V["work_title"] = [t for t, _ in WORKS]
V["year"] = [str(y) for y in range(2023, 1989, -1)]

TEMPLATES = {  # (share of the pool, templates in popularity order)
    "product": (
        0.21,
        L(
            "{color} {material} {product} with {feature} {suffix};{color} {product};"
            "{brand} {color} {product} {audience};{material} {product} {suffix};{product} in {color};"
            "{adj} {material} {product};{color} and {color} {product} {audience};{brand} {product} - {color};"
            "new {color} {product} with {feature};{adj} {color} {product} for the {room}, {size};"
            "{product}-{color}-{size}"
        ),
    ),
    "stock": (
        0.16,
        L(
            "{people} {action} in a {setting};{people} {action};portrait of a smiling {people};"
            "happy {people} {action} on a sunny day;{people} with a {animal} in the {setting};"
            "{people} {action} isolated on white background;{people} {action}, stock photo;"
            "close-up of {people} {action} at home;{people} and {people} {action} in the {setting}"
        ),
    ),
    "nature": (
        0.07,
        L(
            "{animal} {animal_action} in the {setting};{scene};cute {animal} on {color} background;"
            "{scene}, {region};a {color} {animal} {animal_action} on the grass;beautiful {scene};"
            "{animal} and {animal};dog-friendly {setting};{animal}, {animal}."
        ),
    ),
    "travel": (
        0.09,
        L(
            "sunset over the {landmark_full};view of the {landmark_in_city};{city} skyline at night;"
            "aerial view of {city_country};tourists in front of the {landmark};new york city skyline at dusk;"
            "old town street in {city};{city_country} - travel guide;our trip to {city} ({year});"
            "hotel room with a view of the {landmark};{landmark} at sunrise"
        ),
    ),
    "art": (
        0.06,
        L(
            "{work};{work}, oil on canvas;{work_title} poster print - {color} wall art;"
            "book cover of {work} (paperback);abstract painting in {color} and {color};"
            "watercolor painting of a {animal};framed canvas print of {scene};"
            "{work_title} reproduction, framed, {size};illustration of a {animal} reading a book"
        ),
    ),
    "home": (
        0.05,
        L(
            "{n} bedroom house for sale in {town};{room} with {home_feature} and {home_feature};"
            "modern {room} with {color} cabinets and {material} countertops;{n} Bed, {n} Bath - {n} {street};"
            "spacious {room} with {home_feature};apartment for rent in {city};{room} interior design ideas;"
            "front view of the house"
        ),
    ),
    "recipe": (
        0.06,
        L(
            "easy {dish} recipe;homemade {dish} with {ingredient} and {ingredient};the best {dish} ever!;"
            "how to make {dish} (step by step);{dish} on a {color} plate;"
            "grilled hot  dog with {ingredient} and {ingredient};{dish} Recipe | Example Kitchen;"
            "healthy {dish} with {ingredient};a plate of {dish}, {dish}, and {dish};"
            "vegan {dish} - gluten free, dairy free;{dish}: ingredients & method"
        ),
    ),
    "event": (
        0.05,
        L(
            "wedding ceremony at the {venue};bride and groom dancing at the reception;"
            "concert crowd at music festival {year};happy birthday party with {color} balloons;"
            "graduation ceremony {year};U.S. Army soldiers during a training exercise;"
            "christmas tree with lights and gifts;halloween pumpkins on the porch;marathon runners in {city};"
            "fireworks over {city} on New Year's Eve;football match at the stadium;team photo {year};"
            "The Beatles tribute band live on stage;St. Patrick's Day parade in {city};"
            "farmers market in {town}"
        ),
    ),
    "vehicle": (
        0.04,
        L(
            "{color} {vehicle} parked on the {road};vintage {vehicle} for sale;{vehicle} on a {road} at sunset;"
            "used {color} {vehicle}, low mileage;{adj} {color} {vehicle} in {city};"
            "old {vehicle} in the {setting};{year} {color} {vehicle};{people} riding a {vehicle} on the {road};"
            "{vehicle} and {vehicle} on the {road}"
        ),
    ),
    "sport": (
        0.04,
        L(
            "{people} playing {sport} in the {setting};{sport} player with a {gear};kids {sport} team {year};"
            "{color} {sport} {gear};{sport} match at the stadium;{sport} {gear} and {gear} on the grass;"
            "{sport} in {region};{people} {sport} lesson;{sport} world cup {year};{color} and {color} {gear}"
        ),
    ),
    "gadget": (
        0.03,
        L(
            "{brand} {gadget} {spec};{color} {gadget} with {spec};{gadget} on a {material} desk;"
            "new {gadget} and {gadget};{people} using a {gadget} in the {setting};{gadget}, {spec}, {color};"
            "best {gadget} {year};{gadget} unboxing"
        ),
    ),
    "curio": (
        0.015,
        L(
            "{rare} illustration, vintage print;hand-drawn {rare} sticker;{rare} figurine (vintage);"
            "wooden {rare} toy;{rare} coloring page;{rare} clip art;photo of a {rare}"
        ),
    ),
    "misc": (
        0.03,
        L(
            "logo;Click to enlarge;image;photo;banner;icon;placeholder;Loading...;Home;Facebook;"
            "Share on Facebook;avatar;Profile picture;thumbnail;Image may contain: one or more people;"
            "no image available;Product image;Advertisement;Read more"
        ),
    ),
}
FILE_SHARE = 0.05
FOREIGN_SHARE = 0.10
FOREIGN = L(  # short alt-texts in other languages, our own phrasing
    "Schwarzer Lederstuhl mit Armlehnen;Sonnenuntergang am Strand;Wohnzimmer mit Kamin;"
    "Hund im Park;Rezept für Apfelkuchen;Neues Kleid in Rot;"
    "Coucher de soleil sur la tour Eiffel;Robe rouge pour femme;Recette de tarte aux pommes;"
    "Chat noir sur le canapé;Maison à vendre avec jardin;"
    "Vestido rojo de mujer;Atardecer en la playa;Receta de paella valenciana;"
    "Perro jugando en el parque;Casa en venta con piscina;"
    "Tramonto sul mare;Ricetta della pasta al pomodoro;Divano in pelle nera;Vista di Roma;"
    "Pôr do sol na praia;Vestido vermelho feminino;Receita de bolo de chocolate;Gato dormindo;"
    "Красное платье для девушек;Закат над морем;Кошка спит на диване;Москва ночью;"
    "東京の夜景;桜の花と青空;手作りのケーキ;猫が窓辺で寝ている;"
    "北京故宫的雪景;红色连衣裙 夏季新款;家常红烧肉做法;可爱的小狗在草地上;"
    "غروب الشمس على البحر;فستان أحمر للنساء;مدينة دبي في الليل"
)

# --- metadata beyond the slot words; EXTRA_* are rare ("curio" captions) or never used ---
COMMON_WORDS = L(
    "of;the;and;in;with;for;on;at;to;by;from;near;under;is;are;this;my;your;how;best;new;"
    "free;live;set;size;pack;view;front;top;easy;happy"
)
EXTRA_NOUNS = L(
    "aardvark;abacus;accordion;acorn;albatross;alcove;almanac;amethyst;anchor;anvil;aqueduct;archipelago;"
    "armadillo;asteroid;atlas;aviary;badger;bagpipe;ballast;banjo;barnacle;barometer;bassoon;beacon;beetle;"
    "belfry;bison;blimp;bobsled;bonsai;boomerang;buffalo;bugle;bulldozer;cactus;caldera;camel;canoe;canyon;"
    "carousel;catapult;cathedral;cello;chameleon;chandelier;chisel;cicada;clarinet;cobblestone;comet;"
    "compass;condor;coral reef;cormorant;crane;crater;crocodile;crossbow;crystal;cymbal;dagger;dandelion;"
    "dinghy;dolphin;dormitory;dragonfly;drawbridge;dromedary;dulcimer;dune buggy;easel;eel;elk;emerald;"
    "escalator;falcon;ferret;fjord;flamingo;flute;fossil;gargoyle;gazebo;gecko;geyser;glacier;gondola;"
    "gorilla;granary;grasshopper;greenhouse;hammock;harmonica;harp;hedgehog;heron;hippopotamus;hourglass;"
    "hummingbird;hyena;iguana;igloo;jackal;jaguar;jellyfish;kangaroo;kayak;kiln;koala;lagoon;lantern;lemur;"
    "lighthouse;llama;lobster;locomotive;lynx;macaw;mandolin;manatee;marionette;meerkat;metronome;"
    "microscope;minaret;mollusk;monastery;moose;mosaic;narwhal;nebula;oboe;observatory;octopus;orchard;"
    "ostrich;otter;pagoda;pelican;penguin;periscope;pheasant;piccolo;platypus;porcupine;quarry;quill;"
    "raccoon;reindeer;rhinoceros;salamander;saxophone;scarecrow;scorpion;seahorse;sextant;skyscraper;sloth;"
    "snail;sombrero;sparrow;stalactite;stingray;submarine;sundial;swan;tambourine;tapir;telescope;termite;"
    "toucan;trombone;tuba;tundra;turtle;ukulele;unicycle;viaduct;viola;volcano;vulture;walrus;weasel;"
    "windmill;woodpecker;xylophone;yak;yurt;zeppelin;zither"
)
EXTRA_ADJS = L(
    "ancient;arid;azure;bleak;brisk;crimson;dusty;frosty;gilded;hazy;jagged;lush;molten;murky;ornate;"
    "pristine;rugged;serene;shabby;sleek;sturdy;tattered;vivid;weathered;wobbly"
)
EXTRA_WORDS = L(
    "algorithm;allegory;baroque;byzantine;cartography;chromosome;citadel;democracy;dynasty;"
    "electron;epilogue;equinox;feudal;galaxy;genome;hemisphere;inscription;jurisdiction;"
    "kinetic;latitude;legislature;manuscript;medieval;meridian;monsoon;neolithic;orbit;"
    "parliament;photosynthesis;quantum;renaissance;republic;sonnet;symphony;tectonic;theorem;"
    "treaty;velocity;vertebrate;Victorian;Zeus;Apollo;Baltic;Sahara;Amazon;Himalaya;Pacific;"
    "Atlantic;Mediterranean;Christmas;Halloween;Paris;London;Rome;Tokyo;Berlin;Sydney;Dubai;"
    "Venice"
)
CURATED_BIGRAMS = L(
    "new york;york city;living room;coffee table;hot dog;ice cream;st. louis;office chair;"
    "dining room;young woman;young man;stock photo;white background;sunny day;oil on;"
    "on canvas;for sale;free shipping;set of;pack of;wall art;real estate;road trip;"
    "high school;north america;united states;south africa;wedding dress;birthday cake;"
    "dog friendly;cell phone;fast food;full moon;golden retriever;teddy bear;"
    "washing machine;swimming pool;christmas tree;time lapse;city hall"
)
TITLES = L(
    "New York City;New York;United States;U.S.;U.S. Army;Washington, D.C.;St. Patrick's Day;"
    "New Year's Eve;The Beatles;Pink Floyd;The Rolling Stones;Queen;Albert Einstein;Mount Everest;"
    "World War II;Amazon River;Great Barrier Reef;Yellowstone National Park;Grand Canyon;"
    "Niagara Falls;Leonardo DiCaprio;William Shakespeare;Napoleon;Cleopatra;Roman Empire;"
    "Ming dynasty;Olympic Games;FIFA World Cup;Super Bowl;Harvard University;Oxford;Silicon Valley;"
    "Hollywood;Office Chair;Coffee Table;Dining Table;Floor Lamp;Area Rug;Wall Art;Tote Bag;"
    "Living Room;Rio de Janeiro"
)


class Picker:
    """Weighted choice from one uniform draw, so output depends only on rng.random()."""

    def __init__(self, items: list[str], weights: np.ndarray) -> None:
        self.items = items
        self.cdf = (np.cumsum(weights) / np.sum(weights)).tolist()

    def draw(self, rng: np.random.Generator) -> str:
        return self.items[min(bisect.bisect_right(self.cdf, rng.random()), len(self.items) - 1)]


def zipf(items: list[str], s: float) -> Picker:
    """Weight 1/rank**s: each list gets a head and a long tail, like real word use."""
    return Picker(items, 1.0 / np.arange(1, len(items) + 1) ** s)


V["rare"] = [EXTRA_NOUNS[i] for i in np.random.default_rng(SEED + 2).permutation(len(EXTRA_NOUNS))]
SLOTS = {k: zipf(v, SLOT_ZIPF) for k, v in V.items()}
TEMPLATE_PICK = {k: zipf(v[1], 0.8) for k, v in TEMPLATES.items()}
CATEGORY_PICK = Picker(
    list(TEMPLATES) + ["file", "foreign"], np.array([t[0] for t in TEMPLATES.values()] + [FILE_SHARE, FOREIGN_SHARE])
)
SLOT_RE = re.compile(r"\{(\w+)\}")
WORD_RE = re.compile(r"[a-z][a-z-]+")
NOUN_SLOTS = (
    "product",
    "people",
    "setting",
    "animal",
    "scene",
    "room",
    "home_feature",
    "dish",
    "ingredient",
    "venue",
    "vehicle",
    "road",
    "gear",
    "gadget",
)
CASES = {
    "product": (0.55, 0.30),
    "stock": (0.40, 0.45),
    "art": (0.45, 0.45),
    "misc": (0.0, 0.0),
    "recipe": (0.45, 0.40),
    "home": (0.35, 0.50),
}
DOMAINS = {  # reserved example.* hosts only; categories not listed use assets.example.com
    "product": "img.shop.example.com",
    "gadget": "img.shop.example.com",
    "stock": "cdn.stock.example.net",
    "nature": "cdn.stock.example.net",
    "sport": "cdn.stock.example.net",
    "travel": "photos.travel.example.org",
    "art": "media.museum.example.org",
    "home": "listings.homes.example.com",
    "recipe": "www.recipes.example.com",
    "event": "static.news.example.org",
    "vehicle": "cars.example.net",
    "file": "user-content.example.net",
    "foreign": "bilder.example.net",
}


def fill(template: str, rng: np.random.Generator) -> str:
    """Replace {slot}s (slot values may contain slots themselves, hence the loop)."""
    for _ in range(3):
        template = SLOT_RE.sub(lambda m: SLOTS[m.group(1)].draw(rng), template)
    return template


def recase(text: str, category: str, rng: np.random.Generator) -> str:
    """Web alt-text casing: Title Case product titles, sentence case, some lower/UPPER."""
    p_title, p_sentence = CASES.get(category, (0.15, 0.55))
    r = rng.random()
    if r < p_title:
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    if r < p_title + p_sentence:
        return text[:1].upper() + text[1:]
    return text.upper() if r > 0.985 else text


def add_noise(text: str, rng: np.random.Generator) -> str:
    """Occasional double spaces, tabs/newlines, trailing punctuation and site suffixes."""
    spaces = [i for i, c in enumerate(text) if c == " "]
    r = rng.random()
    if r < 0.03 and spaces:
        i = spaces[int(rng.integers(len(spaces)))]
        return text[:i] + "  " + text[i + 1 :]
    if r < 0.045 and spaces:
        i = spaces[int(rng.integers(len(spaces)))]
        return text[:i] + ["\t", "\n", "\r\n"][int(rng.integers(3))] + text[i + 1 :]
    if r < 0.10:
        return text + [".", "!", " ...", "?", " :)", ";"][int(rng.integers(6))]
    if r < 0.13:
        tails = [" | Example Shop", " - Stock Photo", " (HD)", " - Free Download"]
        return text + tails[int(rng.integers(4))]
    return text


def file_name(rng: np.random.Generator) -> str:
    """Camera file names and SKUs: common alt-text junk that should match (almost) nothing."""
    d = f"20{rng.integers(10, 24)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    t = f"{rng.integers(0, 24):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}"
    k, n = int(rng.integers(6)), int(rng.integers(1, 99999))
    return [
        f"IMG_{d}_{t}.jpg",
        f"DSC{n:05d}",
        f"DSC_{n % 10000:04d}.JPG",
        f"Screenshot {d[:4]}-{d[4:6]}-{d[6:]} at {t[:2]}.{t[2:4]}.{t[4:]}",
        f"SKU-{n:05d}-BLK",
        f"photo {n % 20}.jpg",
    ][k]


def caption(rng: np.random.Generator) -> tuple[str | None, str]:
    """One alt-text (or None) and the category it came from."""
    r = rng.random()
    if r < 0.01:
        return None, "misc"
    if r < 0.02:
        return "", "misc"
    cat = CATEGORY_PICK.draw(rng)
    if cat == "file":
        return file_name(rng), cat
    if cat == "foreign":
        text = FOREIGN[int(rng.integers(len(FOREIGN)))]
        return (text + f" {rng.integers(2000, 2024)}" if rng.random() < 0.2 else text), cat
    text = fill(TEMPLATE_PICK[cat].draw(rng), rng)
    return add_noise(recase(text, cat, rng), rng), cat


def url_for(row_id: int, text: str | None, cat: str, rng: np.random.Generator) -> str:
    """Plausible image URL on a reserved example.* domain, slug from the caption when ASCII."""
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:48] or f"{row_id:x}"
    ext = ["jpg", "jpg", "jpg", "png", "webp"][int(rng.integers(5))]
    if cat == "recipe":
        month = f"20{rng.integers(15, 24)}/{rng.integers(1, 13):02d}"
        return f"https://{DOMAINS[cat]}/wp-content/uploads/{month}/{slug}-800x600.{ext}"
    if cat == "product":
        return f"https://{DOMAINS[cat]}/p/{row_id}.{ext}"
    return f"https://{DOMAINS.get(cat, 'assets.example.com')}/i/{row_id % 997}/{slug}.{ext}"


def build_pool(rng: np.random.Generator, n: int) -> tuple[list[int], list[str], list[str | None]]:
    """Generate n rows with unique, increasing ids."""
    ids = (100_000_000 + np.cumsum(rng.integers(1, 40, n))).tolist()
    urls, texts = [], []
    for row_id in ids:
        text, cat = caption(rng)
        texts.append(text)
        urls.append(url_for(row_id, text, cat, rng))
    return ids, urls, texts


def words_of(phrases: list[str]) -> list[str]:
    """Plain word tokens of phrases, in first-seen order."""
    return list(dict.fromkeys(w.strip(",()|:!") for p in phrases for w in p.split()))


def mined_bigrams(n_texts: int, min_count: int) -> list[str]:
    """Modifier+noun pairs frequent in a separate reference corpus (as MetaCLIP mined Wikipedia)."""
    ref_rng = np.random.default_rng(SEED + 1)
    stop = set(COMMON_WORDS) | {"a"}
    nouns = {p.split()[-1] for k in NOUN_SLOTS for p in V[k]}
    pairs: Counter = Counter()
    for _ in range(n_texts):
        text, cat = caption(ref_rng)
        if cat == "foreign":  # the reference corpus is English, like Wikipedia
            continue
        tok = spaced(text or "").split()
        pairs.update(
            f"{a} {b}"
            for a, b in zip(tok, tok[1:])
            if b in nouns and a not in stop and WORD_RE.fullmatch(a) and a[-3:] != "ing"
        )
    return sorted(p for p, c in pairs.items() if c >= min_count)


def build_metadata(rng: np.random.Generator) -> list[str]:
    """MetaCLIP-like order: WordNet-ish, single words, bigrams, titles, then "0".."99"."""
    proper = (
        "n",
        "year",
        "size",
        "suffix",
        "brand",
        "audience",
        "town",
        "street",
        "landmark",
        "city",
        "landmark_full",
        "city_country",
        "work",
        "work_title",
        "rare",
    )
    vocab = [p for k, v in V.items() if k not in proper for p in v]
    tokens = [w for w in words_of(vocab) if WORD_RE.fullmatch(w)]
    cut = int(len(tokens) * 0.6)  # the more common words stand in for WordNet lemmas
    wordnet = sorted(set(tokens[:cut] + EXTRA_NOUNS + EXTRA_ADJS + ["new york city"]))
    singles = COMMON_WORDS + tokens[cut:] + EXTRA_WORDS
    goods = [w for w in V["product"] if " " not in w]
    combos = [f"{m} {h}" for m in V["color"] + V["material"] + V["adj"] for h in goods]
    unseen = [combos[i] for i in sorted(rng.choice(len(combos), UNSEEN_COMBOS, replace=False))]
    stop = set(COMMON_WORDS) | {"a"}
    inner = [
        f"{a} {b}"
        for p in vocab
        for a, b in zip(p.split(), p.split()[1:])
        if a not in stop and b not in stop and WORD_RE.fullmatch(a) and WORD_RE.fullmatch(b)
    ]
    bigrams = CURATED_BIGRAMS + inner + mined_bigrams(REF_TEXTS, REF_MIN_COUNT) + unseen
    titles = TITLES + V["landmark"] + V["city"] + [p[2] for p in PLACES] + [a for w in WORKS for a in w]
    # encyclopedia-style titles of common things ("Dog", "Coffee table"): only some have one
    common = [p for k in NOUN_SLOTS + ("color", "material", "sport") for p in V[k]]
    titles += [p[:1].upper() + p[1:] for p in common if " " in p or rng.random() < TITLE_SHARE]
    numbers = [str(i) for i in range(100)]
    out = [e for e in dict.fromkeys(wordnet + singles + bigrams + titles) if e not in numbers]
    return out + numbers


def spaced(text: str) -> str:
    """The engine's normalisation: pad, space out , . ; : ? ! ` and whiten tab/newline/CR."""
    t = f" {text} "
    for ch in ",.;:?!`":
        t = t.replace(ch, f" {ch} ")
    for ch in "\t\n\r":
        t = t.replace(ch, " ")
    return t


def matches(pool_texts: list[str | None], entries: list[str]) -> list[set[str]]:
    """Entries found in each text, via token n-grams (same result as the substring rule)."""
    table = set(entries)
    longest = max(e.count(" ") + 1 for e in entries)
    found = []
    for text in pool_texts:
        hits: set[str] = set()
        if text:
            tok = spaced(text).split(" ")
            for i in range(len(tok)):
                for j in range(i + 1, min(i + longest, len(tok)) + 1):
                    g = " ".join(tok[i:j])
                    if g in table:
                        hits.add(g)
        found.append(hits)
    return found


def shape(pool_texts: list[str | None], entries: list[str]) -> dict:
    """Summarise how the entries hit the pool; cross-checks against the naive rule."""
    found = matches(pool_texts, entries)
    for text, hits in list(zip(pool_texts, found))[:1500]:
        naive = {e for e in entries if text and f" {e} " in spaced(text)}
        assert naive == hits, (text, naive ^ hits)
    counts = Counter(e for hits in found for e in hits)
    matched = [len(h) for h in found if h]
    return {
        "rows": len(pool_texts),
        "null_or_empty": sum(1 for t in pool_texts if not t),
        "matched_share": round(len(matched) / len(pool_texts), 3),
        "mean_matches_per_matched_text": round(sum(matched) / len(matched), 2),
        "entries": len(entries),
        "entries_with_0_matches": sum(1 for e in entries if counts[e] == 0),
        "top10": counts.most_common(10),
        "entries_over_100": sum(1 for c in counts.values() if c > 100),
        "entries_over_200": sum(1 for c in counts.values() if c > 200),
        "entries_over_300": sum(1 for c in counts.values() if c > 300),
    }


def write_pool(ids: list[int], urls: list[str], texts: list[str | None]) -> list[Path]:
    """Write the parts with fixed row groups and compression (byte-stable per pyarrow version)."""
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("url", pa.string()), pa.field("text", pa.string())]
    )
    (OUT / "pool").mkdir(parents=True, exist_ok=True)
    paths, start = [], 0
    for k, n in enumerate(PART_ROWS):
        part = pa.table([ids[start : start + n], urls[start : start + n], texts[start : start + n]], schema=schema)
        path = OUT / "pool" / f"part-{k:05d}.parquet"
        pq.write_table(part, path, row_group_size=ROW_GROUP, compression="zstd")
        paths.append(path)
        start += n
    return paths


def write_readme(s: dict, paths: list[Path]) -> None:
    """Describe the sample; numbers come from shape() so the README cannot drift."""
    top = ", ".join(f'"{e}" {c}' for e, c in s["top10"])
    parts = ", ".join(f"`pool/{p.name}` ({n:,} rows)" for p, n in zip(paths, PART_ROWS))
    (OUT / "README.md").write_text(
        f"""# Sample data

Small synthetic data for trying the curation tool. Rebuild it in two steps:

    python data_samples/make_sample.py      # the pool, and the vocabulary it was generated around
    python data_samples/make_metadata.py    # the bundled metadata: WordNet + that vocabulary + numbers

Both are deterministic (fixed seed; the same files with the same pyarrow version). The second needs
WordNet 3.0 (Debian's `wordnet-base`) and the project's metadata package.

## Files

- {parts}: columns `id` (int64, unique), `url` (string), `text` (string, may be null),
  row groups of {ROW_GROUP:,} rows, zstd. The captions imitate web alt-texts: product titles,
  stock-photo and travel captions, artworks and books, real-estate, recipes, events,
  camera file names and SKUs, about 10% non-English, about 1% null and 1% empty texts.
  URLs point at reserved `example.com/.net/.org` hosts and do not resolve.
- `metadata.json` (MetaCLIP's JSON list) and `metadata.parquet` (entry, sources): every WordNet 3.0
  synset name (source `wordnet`), the vocabulary below that WordNet lacks (source `extra`:
  brand-like, title-case and bigram entries), then "0".."99" (source `numbers`); WordNet's licence is
  in `WORDNET_LICENSE`. See `metadata/README.md` for how the package builds it.

## Shape, against the generator's own vocabulary

Matching is case-sensitive on space-padded text in which , . ; : ? ! and the backtick
are spaced out and tabs/newlines become spaces; an entry counts once per text.

- rows: {s["rows"]:,} ({s["null_or_empty"]} null or empty)
- texts with at least one match: {s["matched_share"]:.1%};
  mean matches per matched text: {s["mean_matches_per_matched_text"]}
- vocabulary entries: {s["entries"]:,}, of which {s["entries_with_0_matches"]:,} match nothing
- entries with count > 100 / > 200 / > 300: {s["entries_over_100"]} / {s["entries_over_200"]} / \
{s["entries_over_300"]}
- top 10: {top}

Hard cases on purpose: "new york city" (hits "new york", "york city" and "new york city"),
entries with "." such as "U.S." and "st. louis" (never match, since "." is spaced out),
"hot  dog" with two spaces (does not match "hot dog"), Title Case vs lower case, tabs and newlines.
""",
        encoding="utf-8",
    )


def main() -> None:
    rng = np.random.default_rng(SEED)
    entries = build_metadata(rng)
    assert len(set(entries)) == len(entries) and all(e and e == e.strip() for e in entries)
    (OUT / "metadata.json").write_text(json.dumps(entries, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    ids, urls, texts = build_pool(rng, sum(PART_ROWS))
    assert len(set(ids)) == len(ids)
    paths = write_pool(ids, urls, texts)
    s = shape(texts, entries)
    write_readme(s, paths)
    for key, value in s.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

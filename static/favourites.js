/* Favourites: star any run picture from any gallery with a click or the F key (trainer/favourites.py keeps the list). */

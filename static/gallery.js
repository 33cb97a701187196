/* Gallery viewing: a lightbox that enlarges a sample and steps through its gallery with the keys (trainer galleries; see trainer/templates). */

// placeholder: the chat app

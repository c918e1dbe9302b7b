/* placeholder: the plugin SDK lands with the herud issue */

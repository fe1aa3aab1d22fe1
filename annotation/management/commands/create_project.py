"""``manage.py create_project NAME --user USERNAME``: a new project with that user as its admin.

Prints the project's id. A taken name, an unknown user or a name without letters or digits ends
the command with exit status 1 and one line.
"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a project; the given user becomes its admin. Prints its id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--user", required=True, help="username of its first admin")
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model

        from annotation.services import project_create
        from ezquant_web.errors import ApplicationError

        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        try:
            project = project_create(name=options["name"], user=user, description=options["description"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(project.id))
